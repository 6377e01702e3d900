"""Convert a Caffe mean image (.binaryproto) to an MXNet .nd file.

    python tools/caffe_converter/mean_image.py mean.binaryproto mean.nd

saves {"mean_image": (C, H, W) float32} in RGB order (Caffe stores BGR) and prints the
per-channel means, the values to pass as --mean-r/--mean-g/--mean-b.
"""
import argparse
import sys

import numpy as np

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
import mxnet as mx  # noqa: E402

from tools.caffe_converter.caffe_io import (CaffeError, blob_array,  # noqa: E402
                                            read_binaryproto)

MEAN_KEY = "mean_image"


def load_mean_image(path, bgr_to_rgb=True):
    """(C, H, W) float32 mean from a .binaryproto; channels reversed to RGB by default."""
    mean = blob_array(read_binaryproto(path), path)
    if mean.ndim == 4:
        if mean.shape[0] != 1:
            raise CaffeError("%s: expected one mean image, found %d" % (path, mean.shape[0]))
        mean = mean[0]
    if mean.ndim != 3:
        raise CaffeError("%s: expected a (1, C, H, W) mean image, found shape %s"
                         % (path, mean.shape))
    # A copy, not a view: the original converter swapped in place and overwrote a channel.
    return np.ascontiguousarray(mean[::-1] if bgr_to_rgb else mean)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaryproto", help="Caffe mean file")
    parser.add_argument("output", help="MXNet .nd file to write")
    parser.add_argument("--bgr-to-rgb", action=argparse.BooleanOptionalAction, default=True,
                        help="reverse the channels to RGB (default: on)")
    args = parser.parse_args(argv)
    try:
        mean = load_mean_image(args.binaryproto, args.bgr_to_rgb)
    except CaffeError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    mx.nd.save(args.output, {MEAN_KEY: mx.nd.array(mean)})
    order = "RGB" if args.bgr_to_rgb else "file order"
    print("saved %s %s; per-channel means (%s): %s"
          % (args.output, mean.shape, order, " ".join("%.3f" % v for v in mean.mean(axis=(1, 2)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
