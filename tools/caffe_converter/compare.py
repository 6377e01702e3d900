"""Checks a conversion against OpenCV's Caffe runtime (``cv2.dnn``, OpenCV 4.x).

    python tools/caffe_converter/compare.py deploy.prototxt model.caffemodel [--image x.jpg]

runs the Caffe model in OpenCV and the converted model in MXNet on the same input (an image
resized to the network input, mean-subtracted, or random values) and prints how far the
outputs are apart; for SSD models the detections are matched row by row.
"""
import argparse
import sys

import numpy as np

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from tools.caffe_converter.converter import IMAGE_INPUT_NAME, convert  # noqa: E402

DETECTION_COLUMNS = 6       # class, score, xmin, ymin, xmax, ymax
DEFAULT_MEAN_BGR = (104.0, 117.0, 123.0)  # SSD-Caffe's means; (123, 117, 104) as RGB


def opencv_forward(prototxt, caffemodel, bgr_input, outputs=None):
    """Outputs of OpenCV's Caffe importer for one NCHW BGR input (all final outputs, or the
    named blobs)."""
    import cv2
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setInput(np.ascontiguousarray(bgr_input, dtype=np.float32))
    if outputs is None:
        return list(net.forward(net.getUnconnectedOutLayersNames()))
    return list(net.forward(list(outputs)))


def relative_error(actual, expected):
    """max |actual - expected| / max |expected| (absolute when expected is all zeros)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError("shapes differ: %s vs %s" % (actual.shape, expected.shape))
    scale = np.abs(expected).max() if expected.size else 0.0
    return float(np.abs(actual - expected).max() / (scale if scale > 0 else 1.0))


def _sorted_detections(rows):
    rows = np.asarray(rows, np.float64).reshape(-1, DETECTION_COLUMNS)
    return rows[np.lexsort((-rows[:, 1], rows[:, 0]))]


def opencv_detections(output, min_score=0.0):
    """Caffe DetectionOutput rows (1, 1, K, 7) -> (K', 6) [class-1, score, box], sorted by
    class then score.  OpenCV pads to keep_top_k with all-zero rows (label 0 = background),
    which are dropped."""
    rows = np.asarray(output).reshape(-1, 7)
    rows = rows[(rows[:, 1] > 0) & (rows[:, 2] >= min_score)]
    return _sorted_detections(np.c_[rows[:, 1] - 1, rows[:, 2:7]])


def mxnet_detections(output, min_score=0.0):
    """MultiBoxDetection rows of the first image (A, 6) -> kept rows, sorted like
    :func:`opencv_detections`."""
    rows = np.asarray(output)[0]
    return _sorted_detections(rows[(rows[:, 0] >= 0) & (rows[:, 1] >= min_score)])


def detection_differences(actual, expected):
    """(count difference, max |class diff|, max |score diff|, max |box diff|)."""
    if len(actual) != len(expected):
        return len(actual) - len(expected), None, None, None
    if not len(actual):
        return 0, 0.0, 0.0, 0.0
    diff = np.abs(actual - expected)
    return 0, float(diff[:, 0].max()), float(diff[:, 1].max()), float(diff[:, 2:].max())


def make_input(shape, image_path=None, seed=0):
    """(BGR NCHW for OpenCV, RGB NCHW for the converted model), mean-subtracted."""
    if image_path is None:
        bgr = np.random.default_rng(seed).uniform(-128, 128, shape).astype(np.float32)
    else:
        import cv2
        image = cv2.imread(image_path)
        if image is None:
            raise SystemExit("cannot read image %s" % image_path)
        image = cv2.resize(image, (shape[3], shape[2])).astype(np.float32)
        bgr = (image - np.float32(DEFAULT_MEAN_BGR)).transpose(2, 0, 1)[None]
    return bgr, np.ascontiguousarray(bgr[:, ::-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prototxt")
    parser.add_argument("caffemodel")
    parser.add_argument("--image", help="image to run (default: random input)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input")
    args = parser.parse_args(argv)
    model = convert(args.prototxt, args.caffemodel)
    bgr, rgb = make_input(model.input_shapes[IMAGE_INPUT_NAME], args.image, args.seed)
    expected = opencv_forward(args.prototxt, args.caffemodel, bgr)[0]
    actual = model.forward(**{IMAGE_INPUT_NAME: rgb})[0]
    if actual.ndim == 3 and actual.shape[2] == DETECTION_COLUMNS and expected.shape[-1] == 7:
        ours, theirs = mxnet_detections(actual, 0.5), opencv_detections(expected, 0.5)
        count, cls, score, box = detection_differences(ours, theirs)
        print("detections scoring >= 0.5: MXNet %d, OpenCV %d" % (len(ours), len(theirs)))
        if count == 0:
            print("max differences: class %g, score %.3g, box %.3g" % (cls, score, box))
        return 0 if count == 0 else 1
    print("output %s: max relative difference %.3g" % (actual.shape,
                                                       relative_error(actual, expected)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
