"""INT8 SSD for CPUs: MXNet's MKLDNN (oneDNN) quantization of a trained checkpoint, calibrated
on N images of a .rec, then scored against the fp32 model (mAP and speed) on a validation .rec.

    python -m tools.quantize                      # the shipped demo model on synthetic data
    python -m tools.quantize --network vgg16_reduced --prefix model/ssd_vgg16_reduced_300 \\
        --epoch 240 --data-shape 300 --num-class 20 --class-names pascal_voc \\
        --calib-rec data/train.rec --eval-rec data/val.rec --num-calib-images 500

Writes ``<output>-symbol.json`` / ``<output>-0000.params`` and, when the model has one, its
model spec (default output: the model prefix plus ``_int8``).  The saved graph uses the
project's MultiBox operators (``symbol.operators.load()`` before ``mx.sym.load``);
``evaluate.py --prefix <output> --epoch 0`` runs it (add ``--deploy`` for a model without a
spec).  The heads' zero-filter padding is undone first (``symbol.graph_edit``: a padded
weight is computed, so it would be quantised again on every forward).  MXNet fuses every
convolution with its ReLU, quantizes it to int8/uint8 and keeps fp32 where oneDNN has no int8
kernel (L2Normalization, softmax, the MultiBox operators).  On CPUs with AMX (Intel Xeon since
Sapphire Rapids) the INT8 convolutions run on it: see ``mxssd_compat``.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from config.threads import set_default_threads  # noqa: E402

set_default_threads()  # before mxnet is imported: OpenMP reads OMP_NUM_THREADS once
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

from config import cli  # noqa: E402

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet.contrib.quantization import quantize_model_mkldnn  # noqa: E402
from tqdm import tqdm  # noqa: E402

CALIB_MODES = ("naive", "entropy")
# int8 output where a quantized consumer follows, uint8 after ReLU; 'smart' leaves a layer in
# fp32 when quantizing it would only add (de)quantize pairs around a lone op.
QUANTIZE_SETTINGS = dict(quantized_dtype="auto", quantize_mode="smart",
                         quantize_granularity="tensor-wise")
OUTPUT_SUFFIX = "_int8"
QUANTIZED_EPOCH = 0


class QuantizeError(ValueError):
    """Inputs that cannot be quantized as asked; the message says why."""


class ImagesOnly(mx.io.DataIter):
    """The ``data`` of the first ``num_images`` images of a detection iterator (calibration
    runs a label-free Module); padding of the last batch is not counted as images."""

    def __init__(self, det_iter, num_images):
        super().__init__(det_iter.provide_data[0].shape[0])
        self.det_iter, self.num_images = det_iter, int(num_images)
        self.provide_data, self.provide_label = det_iter.provide_data, []
        self.seen = 0

    def reset(self):
        self.det_iter.reset()
        self.seen = 0

    def next(self):
        if self.seen >= self.num_images:
            raise StopIteration
        batch = self.det_iter.next()
        self.seen += self.batch_size - (batch.pad or 0)
        return mx.io.DataBatch(data=batch.data, pad=batch.pad, provide_data=self.provide_data)


def record_iter(path, batch_size, data_shape, mean_pixels, num_classes=None):
    """Validation batches (no augmentation, each image once) of a detection .rec."""
    from dataset.iterator import validation_iter
    if not os.path.isfile(path):
        raise QuantizeError("record file not found: %s" % path)
    return validation_iter(path, batch_size, data_shape, mean_pixels, num_classes=num_classes)


def quantize(symbol, arg_params, aux_params, calib_data, num_calib_images,
             calib_mode="naive", excluded_layers=(), logger=None):
    """(qsymbol, qarg_params, aux_params): the test ``symbol`` fused and quantized by MXNet's
    MKLDNN backend, with thresholds from ``num_calib_images`` images of ``calib_data`` (a
    DataIter of ``data`` only, see :class:`ImagesOnly`).

    ``calib_mode`` 'naive' takes each layer's min/max over the calibration images, 'entropy'
    the threshold minimising the KL divergence of the int8 histogram (slower; may clip rare
    large activations).  ``excluded_layers``: node names to keep in fp32.
    """
    if calib_mode not in CALIB_MODES:
        raise QuantizeError("calib_mode must be one of %s, got %r"
                            % (", ".join(CALIB_MODES), calib_mode))
    if num_calib_images < 1:
        raise QuantizeError("need at least 1 calibration image, got %d" % num_calib_images)
    unknown = sorted(set(excluded_layers) - _node_names(symbol))
    if unknown:
        raise QuantizeError("excluded layer(s) not in the network: %s" % ", ".join(unknown))
    from symbol.graph_edit import without_head_padding
    return quantize_model_mkldnn(
        without_head_padding(symbol), arg_params, aux_params, data_names=("data",),
        label_names=(), ctx=mx.cpu(),
        excluded_sym_names=list(excluded_layers), calib_mode=calib_mode, calib_data=calib_data,
        num_calib_examples=num_calib_images, logger=logger, **QUANTIZE_SETTINGS)


def _node_names(symbol):
    return {name[:-len("_output")] for name in symbol.get_internals().list_outputs()
            if name.endswith("_output")}


def quantized_layer_count(qsymbol):
    """Number of convolutions that run in int8 (fused MKLDNN nodes marked quantized)."""
    nodes = json.loads(qsymbol.tojson())["nodes"]
    return sum(1 for n in nodes if n["op"] == "_sg_mkldnn_conv"
               and n.get("attrs", {}).get("quantized") == "true")


def bind(symbol, arg_params, aux_params, data_shape, source="the model"):
    from symbol.model_io import bind_for_inference
    return bind_for_inference(symbol, arg_params, aux_params, mx.io.DataDesc("data", data_shape),
                              mx.cpu(), source)


def compare_on_records(runtimes, eval_iter, class_names):
    """Run every runtime ({name: detect.runtimes runtime}) on the same batches, taking turns
    batch by batch (so load from other processes hits all alike).  Returns {name: (mAP
    (VOC07), images/s of detection up to a numpy output)}."""
    from evaluate.eval_metric import VOC07MApMetric
    metrics = {name: VOC07MApMetric(0.5, False, class_names) for name in runtimes}
    seconds = dict.fromkeys(runtimes, 0.0)
    images = 0
    eval_iter.reset()
    first = eval_iter.next()
    for runtime in runtimes.values():  # untimed: kernels are created on the first call
        runtime.detect(first.data[0])
    eval_iter.reset()
    bar = tqdm(desc=" vs ".join(runtimes), unit="img")
    for batch in eval_iter:
        real = eval_iter.batch_size - (batch.pad or 0)
        for name, runtime in runtimes.items():
            start = time.perf_counter()
            dets = runtime.detect(batch.data[0])
            seconds[name] += time.perf_counter() - start
            metrics[name].update([batch.label[0][:real]], [dets[:real]])
        images += real
        bar.update(real)
    bar.close()
    return {name: (metrics[name].mean_ap(), images / seconds[name]) for name in runtimes}


def print_comparison(results, prefix, eval_rec, batch_size, reference, candidate):
    print("%s on %s (batch %d, OMP_NUM_THREADS=%s, load %.2f)"
          % (os.path.basename(prefix), eval_rec, batch_size,
             os.environ.get("OMP_NUM_THREADS"), os.getloadavg()[0]))
    width = max(len(name) for name in results)
    print("%-*s %10s %10s" % (width, "model", "VOC07 mAP", "images/s"))
    for name, (mean_ap, rate) in results.items():
        print("%-*s %10.4f %10.2f" % (width, name, mean_ap, rate))
    print("%s / %s speed: %.2fx, mAP change: %+.4f"
          % (candidate, reference, results[candidate][1] / results[reference][1],
             results[candidate][0] - results[reference][0]))


def confident_rows(output, image, min_score):
    rows = output[image]
    return rows[(rows[:, 0] >= 0) & (rows[:, 1] >= min_score)]


def box_iou(box, boxes):
    """IoU of one [xmin, ymin, xmax, ymax] box with each row of ``boxes``."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    return inter / np.maximum(area + areas - inter, 1e-12)


def detection_agreement(reference, candidate, min_score=0.5, iou=0.5):
    """(share of the reference's detections scoring >= ``min_score`` that the candidate also
    makes -- same class, IoU >= ``iou``, any score --, mean |score difference| of those
    matches).  Both are MultiBoxDetection outputs (batch, anchors, 6) as numpy arrays."""
    found, total, score_diffs = 0, 0, []
    for image in range(len(reference)):
        candidates = confident_rows(candidate, image, 0.0)
        for row in confident_rows(reference, image, min_score):
            total += 1
            same_class = candidates[candidates[:, 0] == row[0]]
            if not len(same_class):
                continue
            overlaps = box_iou(row[2:], same_class[:, 2:])
            if overlaps.max() >= iou:
                found += 1
                score_diffs.append(abs(same_class[overlaps.argmax(), 1] - row[1]))
    share = found / total if total else float("nan")
    return share, float(np.mean(score_diffs)) if score_diffs else float("nan")


def prepare_synthetic(directory):
    """The synthetic dataset of the demo model's recipe, where bench/train.py keeps it
    (generated once, then reused)."""
    from dataset import synthetic
    from train.recipes import DEMO
    directory = directory or os.path.join(ROOT, "data", "synthetic_%d" % DEMO.data_shape)
    return synthetic.prepare(directory, num_train=DEMO.num_train, num_val=DEMO.num_val,
                             seed=DEMO.data_seed, data_shape=DEMO.data_shape)


def parse_args(argv=None):
    from detect.shipped import SHIPPED_MODEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    cli.add_model_args(parser, SHIPPED_MODEL["prefix"], "(default: the shipped model)")
    cli.add_nms_args(parser)
    parser.add_argument("--calib-rec", help="images to calibrate on (default: the synthetic "
                        "train.rec)")
    parser.add_argument("--eval-rec", help="validation .rec for mAP and speed (default: the "
                        "synthetic val.rec; '' to skip)")
    parser.add_argument("--synthetic-dir", help="where the demo model's synthetic dataset "
                        "lives or is generated (default: data/synthetic_<recipe input size>)")
    parser.add_argument("--num-calib-images", type=cli.positive_int, default=64)
    parser.add_argument("--calib-mode", choices=CALIB_MODES, default="naive")
    parser.add_argument("--exclude", default="", help="comma list of layers kept in fp32")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8)
    parser.add_argument("--output", help="output prefix (default: <prefix>%s)" % OUTPUT_SUFFIX)
    parser.add_argument("--format", choices=("mxnet", "onnx"), default="mxnet",
                        help="mxnet: MXNet's MKLDNN INT8 checkpoint; onnx: the exported ONNX "
                        "model quantised by onnxruntime (QDQ, runs as INT8 on ONNX Runtime, "
                        "OpenVINO and OpenCV dnn), as <dir>/deploy_<name>%s.onnx" % OUTPUT_SUFFIX)
    parser.add_argument("--onnx-raw", action=cli.BOOL, default=False,
                        help="--format onnx: the raw export (no decoding and NMS, what OpenCV "
                        "dnn runs), as ...-raw.onnx")
    return parser.parse_args(argv)


def onnx_runtimes(raw, float_path, int8_path, symbol):
    """fp32 and INT8 of every runtime here that runs the export: ONNX Runtime and OpenVINO the
    full model, OpenCV dnn the raw one; {} and a note for each one missing."""
    from detect import runtimes
    opened = {}
    for name in ("opencv",) if raw else tuple(runtimes.ONNX_RUNTIMES):
        try:
            if name == "opencv":
                import cv2
                decode = runtimes.detection_decoder(symbol)
                for precision, path in (("fp32", float_path), ("int8", int8_path)):
                    opened["%s %s" % (precision, name)] = runtimes.OpenCvRuntime(cv2, path,
                                                                                 decode)
            else:
                for precision, path in (("fp32", float_path), ("int8", int8_path)):
                    opened["%s %s" % (precision, name)] = runtimes.open_onnx_runtime(name, path)
        except ImportError as err:
            print("skipped %s: %s" % (name, err))
    return opened


def quantize_onnx_checkpoint(args, prefix, epoch, settings, net, calib):
    """--format onnx: export the checkpoint to ONNX, quantise it (detect.onnx_quantize) on the
    same calibration images as the MXNet INT8 model, and score fp32 against INT8 on every
    runtime that runs it."""
    import tempfile
    from detect.onnx_export import export_onnx_checkpoint
    from detect.onnx_quantize import iter_images, quantize_onnx, quantized_conv_count
    from symbol import model_io
    output = (model_io.onnx_file(args.output, args.onnx_raw) if args.output else
              model_io.onnx_path(prefix + OUTPUT_SUFFIX, args.onnx_raw))
    with tempfile.TemporaryDirectory() as work:
        float_path = export_onnx_checkpoint(settings, prefix, epoch, model_io.read_spec(prefix),
                                            raw=args.onnx_raw,
                                            path=os.path.join(work, "fp32.onnx"))
        start = time.time()
        seen = quantize_onnx(float_path, output, iter_images(calib), args.num_calib_images,
                             args.calib_mode)
        print("quantized %d convolutions to int8 in %.0f s (%s calibration on %d images of %s)"
              % (quantized_conv_count(output), time.time() - start, args.calib_mode, seen,
                 args.calib_rec))
        print("wrote %s" % output)
        if not args.eval_rec:
            return 0
        runtimes = onnx_runtimes(args.onnx_raw, float_path, output, net)
        side = model_io.image_hw(settings["data_shape"])
        eval_iter = record_iter(args.eval_rec, args.batch_size, side, settings["mean_pixels"],
                                settings["num_classes"])
        results = compare_on_records(runtimes, eval_iter, settings["class_names"])
    names = list(results)
    for reference, candidate in zip(names[::2], names[1::2]):
        print_comparison({n: results[n] for n in (reference, candidate)}, prefix,
                         args.eval_rec, args.batch_size, reference, candidate)
    return 0


@cli.command
def main(argv=None):
    from detect.shipped import fallback_settings
    from symbol import model_io
    args = parse_args(argv)
    if args.format == "onnx" or args.onnx_raw:
        from detect.onnx_quantize import require_quantization
        require_quantization()  # before the export and calibration, not after
    prefix, _, settings = cli.open_model(args, fallback_settings())
    epoch = model_io.resolve_epoch(prefix, args.epoch)
    class_names, side = settings["class_names"], model_io.image_hw(settings["data_shape"])
    if args.calib_rec is None or args.eval_rec is None:
        data = prepare_synthetic(args.synthetic_dir)
        args.calib_rec = data["train_rec"] if args.calib_rec is None else args.calib_rec
        args.eval_rec = data["val_rec"] if args.eval_rec is None else args.eval_rec
    net = model_io.inference_symbol(settings)
    arg_params, aux_params = model_io.load_params(prefix, epoch)
    calib = ImagesOnly(record_iter(args.calib_rec, args.batch_size, side,
                                   settings["mean_pixels"], settings["num_classes"]),
                       args.num_calib_images)
    if args.format == "onnx" or args.onnx_raw:
        return quantize_onnx_checkpoint(args, prefix, epoch, settings, net, calib)
    start = time.time()
    excluded = [name for name in args.exclude.split(",") if name]
    qsym, qargs, qaux = quantize(net, arg_params, aux_params, calib, args.num_calib_images,
                                 args.calib_mode, excluded)
    print("quantized %d convolutions to int8 in %.0f s (%s calibration on %d images of %s)"
          % (quantized_layer_count(qsym), time.time() - start, args.calib_mode,
             min(calib.seen, args.num_calib_images), args.calib_rec))
    output = args.output or prefix + OUTPUT_SUFFIX
    spec = model_io.read_spec(prefix)
    # the int8 graph runs as saved: evaluate.py / demo.py with --prefix/--epoch alone
    model_io.export_model(output, QUANTIZED_EPOCH, qsym, qargs, qaux,
                          dict(spec, deploy=True) if spec else None)
    print("wrote %s-symbol.json and %s-%04d.params" % (output, output, QUANTIZED_EPOCH))
    if args.eval_rec:
        from detect.runtimes import MXNetRuntime
        shape = (args.batch_size, 3) + tuple(side)
        runtimes = {"fp32": MXNetRuntime(bind(net, arg_params, aux_params, shape,
                                              model_io.params_path(prefix, epoch))),
                    "int8": MXNetRuntime(bind(qsym, qargs, qaux, shape, output))}
        eval_iter = record_iter(args.eval_rec, args.batch_size, side, settings["mean_pixels"],
                                settings["num_classes"])
        print_comparison(compare_on_records(runtimes, eval_iter, class_names), prefix,
                         args.eval_rec, args.batch_size, "fp32", "int8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
