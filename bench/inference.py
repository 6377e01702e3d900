#!/usr/bin/env python
"""CPU inference speed of SSD: ours (fp32 and INT8) against the implementations a user would
pick -- OpenCV dnn running the same network as a Caffe model, GluonCV and torchvision -- all
in one process, on the same images, taking turns run by run.

    python -m bench.inference                        # VGG16 SSD300, batch 1 and 8
    python -m bench.inference --models all --rounds 3
    python -m bench.inference --threads 1 --batch-sizes 1

OpenCV runs a Caffe twin of our graph (bench/caffe_twin.py) whose random weights are
converted with tools/caffe_converter and loaded into ours, so both run identical weights;
their outputs are compared before any timing.  GluonCV and torchvision run their own models
(random weights, same architecture and input size): only their speed is comparable.
Timings cover the forward pass and post-processing (decoding, NMS) of a prepared batch up to
detections in host memory; image decoding and resizing are left out for every runtime.
"""
import argparse
import logging
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench.timing import (configure_threads, format_table, interleaved_medians,  # noqa: E402
                          load_average)

THREADS = configure_threads(sys.argv)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from dataset.iterator import preprocess_image  # noqa: E402
from symbol import operators  # noqa: E402
from bench.caffe_twin import write_caffe_twin  # noqa: E402
from bench.random_weights import random_params  # noqa: E402
from bench.peers import (GLUON_MEAN, GLUON_STD, PEER_INSTALL, available_peers,  # noqa: E402
                         import_gluoncv)
from dataset import synthetic  # noqa: E402
from symbol.symbol_factory import get_symbol  # noqa: E402
from tools import quantize  # noqa: E402
from tools.caffe_converter.compare import (detection_differences,  # noqa: E402
                                           mxnet_detections, opencv_detections,
                                           opencv_forward, relative_error)
from tools.caffe_converter.converter import convert  # noqa: E402

NUM_CLASSES = 20
CONFIDENT = 0.5    # detections compared between runtimes (see tools/caffe_converter/README.md)
TOLERANCE = 1e-4
NMS = dict(nms_thresh=0.45, nms_topk=400)  # SSD's published deploy settings, all runtimes
VARIANCES = (0.1, 0.1, 0.2, 0.2)

# network -> which peers run it.  GluonCV / torchvision names are their model-zoo entries.
MODELS = {
    "vgg16_300": dict(title="VGG16-reduced SSD300", network="vgg16_reduced", data_shape=300,
                      opencv=True, gluoncv="ssd_300_vgg16_atrous_voc",
                      torchvision="ssd300_vgg16"),
    "vgg16_512": dict(title="VGG16-reduced SSD512", network="vgg16_reduced", data_shape=512,
                      opencv=True, gluoncv="ssd_512_vgg16_atrous_voc", torchvision=None),
    "resnet50_512": dict(title="ResNet-50 SSD512", network="resnet50", data_shape=512,
                         opencv=False, gluoncv="ssd_512_resnet50_v1_voc", torchvision=None),
}

# How ours can run: (engine, MKLDNN subgraph fusion).  A Module binds with MXNet's default
# subgraph backend, which on MKLDNN builds is MKLDNN itself; 'none' switches it off.
OURS_SETTINGS = {
    "Module, no fusion": ("module", "none"),
    "Module (MXNet default)": ("module", "default"),
    "SymbolBlock static": ("gluon", "none"),
    "SymbolBlock static + MKLDNN": ("gluon", "MKLDNN"),
}
OURS_FASTEST = "Module (MXNet default)"
REFERENCE_SETTING = "Module, no fusion"
INT8_NAME = "ours INT8 (Module, MKLDNN)"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", default="vgg16_300",
                        help="comma list of %s, or 'all'" % ", ".join(MODELS))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed runs per runtime (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for every runtime (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--peers", default="opencv,gluoncv,torchvision",
                        help="comma list of peers to run ('' for ours only)")
    parser.add_argument("--settings", action=argparse.BooleanOptionalAction, default=True,
                        help="first compare the ways ours can run (batch 1, first model)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="include our INT8 model (tools/quantize.py)")
    parser.add_argument("--calib-images", type=int, default=16,
                        help="synthetic images the INT8 model is calibrated on")
    args = parser.parse_args()
    args.models = list(MODELS) if args.models == "all" else args.models.split(",")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error("unknown model(s) %s; choose from %s" % (unknown, ", ".join(MODELS)))
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in args.peers if p not in PEER_INSTALL]
    if unknown:
        parser.error("unknown peer(s) %s; choose from %s" % (unknown, ", ".join(PEER_INSTALL)))
    return args


# ------------------------------------------------------------------------------ inputs

def synthetic_images(count, side, split="val"):
    """``count`` synthetic RGB uint8 images resized to side x side (what every runtime gets
    after its own decoding and resizing)."""
    return [cv2.resize(synthetic.render_image(0, split, i, side)[0], (side, side),
                       interpolation=cv2.INTER_LINEAR) for i in range(count)]


def ours_input(images):
    """NCHW float32, the Detector's preprocessing of the RGB ``images``."""
    return np.stack([preprocess_image(image[:, :, ::-1], image.shape[:2]) for image in images])


def gluoncv_input(images):
    batch = (np.stack(images).astype(np.float32) / 255 - GLUON_MEAN) / GLUON_STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


# ------------------------------------------------------------------------------ ours

def caffe_twin_params(sym, side, workdir):
    """Write the Caffe twin of ``sym`` and convert it with our converter; returns (prototxt,
    caffemodel, arg_params for ``sym``)."""
    prototxt, caffemodel = write_caffe_twin(sym, (side, side),
                                            os.path.join(workdir, "twin.prototxt"),
                                            os.path.join(workdir, "twin.caffemodel"))
    converted = convert(prototxt, caffemodel)
    needed = set(sym.list_arguments()) - {"data"}
    missing = sorted(needed - set(converted.arg_params))
    if missing:
        raise RuntimeError("the converted Caffe twin lacks %s" % ", ".join(missing))
    return prototxt, caffemodel, {k: mx.nd.array(v) for k, v in converted.arg_params.items()
                                  if k in needed}


def module_runner(sym, args, auxs, data, fusion="default"):
    """Forward + copy of the detections to numpy, with an MXNet Module."""
    backend = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    if fusion == "none":  # read by MXNet at bind time
        os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    try:
        module = mx.mod.Module(sym, data_names=("data",), label_names=None, context=mx.cpu())
        module.bind(data_shapes=[("data", data.shape)], for_training=False)
    finally:
        if backend is None:
            os.environ.pop("MXNET_SUBGRAPH_BACKEND", None)
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = backend
    module.set_params(args, auxs, allow_missing=False, allow_extra=True)
    batch = mx.io.DataBatch([data])

    def run():
        module.forward(batch, is_train=False)
        return module.get_outputs()[0].asnumpy()
    return run


def gluon_runner(sym, args, auxs, data, fusion="none"):
    """The same graph as a hybridized SymbolBlock with static memory and shapes."""
    with warnings.catch_warnings():  # SymbolBlock warns about the untyped 'data' input
        warnings.simplefilter("ignore")
        block = mx.gluon.SymbolBlock(sym, mx.sym.var("data"))
    needed = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    block.collect_params().load_dict({k: v for k, v in dict(args, **auxs).items()
                                      if k in needed}, ctx=mx.cpu())
    block.hybridize(static_alloc=True, static_shape=True,
                    backend=None if fusion == "none" else fusion)
    return lambda: block(data).asnumpy()


def ours_runner(setting, sym, args, auxs, data):
    engine, fusion = OURS_SETTINGS[setting]
    make = module_runner if engine == "module" else gluon_runner
    return make(sym, args, auxs, data, fusion)


def int8_model(sym, args, auxs, side, calib_images):
    """Our INT8 model, calibrated (naive min/max) on synthetic training images."""
    images = ours_input(synthetic_images(calib_images, side, "train"))
    calib = mx.io.NDArrayIter(mx.nd.array(images), batch_size=min(8, calib_images))
    return quantize.quantize(sym, args, auxs, calib, calib_images, "naive")


# ------------------------------------------------------------------------------ peers

def opencv_runner(prototxt, caffemodel, bgr, winograd=True):
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.enableWinograd(winograd)

    def run():
        net.setInput(bgr)
        return net.forward()
    return run


def gluoncv_runner(name, data):
    gcv = import_gluoncv()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = gcv.model_zoo.get_model(name, pretrained=False, pretrained_base=False)
        net.initialize(ctx=mx.cpu())
    net.hybridize(static_alloc=True, static_shape=True)  # GluonCV's own evaluation setting
    return lambda: [out.asnumpy() for out in net(data)]


def torchvision_runner(name, images):
    import torch
    import torchvision
    torch.set_num_threads(THREADS)
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None,
                                                        num_classes=NUM_CLASSES + 1).eval()
    batch = [torch.from_numpy(im.transpose(2, 0, 1).astype(np.float32) / 255) for im in images]

    def run():
        with torch.inference_mode():
            return [{k: v.numpy() for k, v in out.items()} for out in model(batch)]
    return run


# ------------------------------------------------------------------------------ checks

def comparable_score(cls_prob, top_k):
    """Lowest score at which both detection operators keep the same rows: >= 0.5 (one class
    per prior) and above the top_k-th best prior (MultiBoxDetection's top_k counts all
    classes together, Caffe's each class apart)."""
    best = np.sort(cls_prob[0, 1:].max(axis=0))[::-1]
    return max(CONFIDENT, float(best[top_k]) + 1e-6 if len(best) > top_k else 0.0)


def check_against_opencv(sym, args, prototxt, caffemodel, data_rgb):
    """Same network, same weights: ours' head outputs vs OpenCV's blobs, and the confident
    detections decoded with Caffe's semantics (boxes not clipped).  Returns a summary line;
    raises if they disagree."""
    internals = sym.get_internals()
    heads = mx.sym.Group([internals[n + "_output"] for n in
                          ("multibox_loc_pred", "cls_prob", "multibox_anchors")])
    image = data_rgb[:1]
    executor = heads.bind(mx.cpu(), dict(args, data=mx.nd.array(image)), grad_req="null")
    loc, cls_prob, anchors = executor.forward(is_train=False)
    theirs = opencv_forward(prototxt, caffemodel, np.ascontiguousarray(image[:, ::-1]),
                            ["mbox_loc", "mbox_conf_softmax", "detection_out"])
    loc_error = relative_error(loc.asnumpy(), theirs[0].reshape(loc.shape))
    prob_error = relative_error(cls_prob.asnumpy().transpose(0, 2, 1),
                                theirs[1].reshape(cls_prob.shape[0], -1, cls_prob.shape[1]))
    unclipped = mx.nd.MultiBoxDetection(cls_prob, loc, anchors, clip=False, threshold=0.01,
                                        nms_threshold=NMS["nms_thresh"],
                                        nms_topk=NMS["nms_topk"], variances=VARIANCES)
    min_score = comparable_score(cls_prob.asnumpy(), NMS["nms_topk"])
    ours_rows = mxnet_detections(unclipped.asnumpy(), min_score)
    opencv_rows = opencv_detections(theirs[2], min_score)
    count, classes, scores, boxes = detection_differences(ours_rows, opencv_rows)
    if max(loc_error, prob_error) > TOLERANCE or count or classes or max(scores, boxes) > 1e-3:
        raise RuntimeError("ours and OpenCV disagree: loc %.2g, softmax %.2g, detections %d vs "
                           "%d" % (loc_error, prob_error, len(ours_rows), len(opencv_rows)))
    return ("ours = OpenCV: loc/softmax max rel. diff %.1e/%.1e; %d detections >= %.2f, "
            "identical (score/box diff %.1e/%.1e)"
            % (loc_error, prob_error, len(ours_rows), min_score, scores, boxes))


# ------------------------------------------------------------------------------ tables

def settings_table(sym, args, auxs, data, rounds, warmup):
    """Every way ours can run, batch 1: speed, first-call time, output vs no fusion."""
    runs, first_call, outputs = {}, {}, {}
    for setting in OURS_SETTINGS:
        start = time.perf_counter()
        runs[setting] = ours_runner(setting, sym, args, auxs, data)
        outputs[setting] = runs[setting]()
        first_call[setting] = time.perf_counter() - start
    medians = interleaved_medians(runs, rounds, warmup, desc="ours' settings")
    base = medians["Module (MXNet default)"]
    rows = [(setting, "%.2f" % (1 / medians[setting]), "%.0f" % (medians[setting] * 1e3),
             "%.2fx" % (base / medians[setting]), "%.1f" % first_call[setting],
             "%.1e" % np.abs(outputs[setting] - outputs[REFERENCE_SETTING]).max())
            for setting in OURS_SETTINGS]
    return format_table(("ours, fp32 setting", "img/s", "ms", "vs default", "first call s",
                         "max |diff|"), rows)


def build_runners(model, sym, args, auxs, twin, batch, int8, peers):
    """name -> run() for one batch size (ours fp32 first), and notes on their outputs."""
    side = model["data_shape"]
    images = synthetic_images(batch, side)
    data = ours_input(images)
    fastest = ours_runner(OURS_FASTEST, sym, args, auxs, mx.nd.array(data))
    runs = {"ours fp32 (%s)" % OURS_FASTEST: fastest}
    fp32 = module_runner(sym, args, auxs, mx.nd.array(data), "none")()
    notes = ["fastest setting vs Module without fusion: max |diff| %.1e"
             % np.abs(fastest() - fp32).max()]
    if int8 is not None:
        runs[INT8_NAME] = module_runner(*int8, mx.nd.array(data))
        share, score_diff = quantize.detection_agreement(fp32, runs[INT8_NAME](), CONFIDENT)
        notes.append("INT8 keeps %.0f%% of the fp32 detections >= %.1f (same class, IoU >= "
                     "0.5; mean |score diff| %.3f)" % (100 * share, CONFIDENT, score_diff))
    if "opencv" in peers and twin:
        bgr = np.ascontiguousarray(data[:, ::-1])
        runs["OpenCV dnn %s (Caffe twin)" % cv2.__version__] = opencv_runner(*twin, bgr)
        runs["OpenCV dnn, Winograd off"] = opencv_runner(*twin, bgr, winograd=False)
    if "gluoncv" in peers and model["gluoncv"]:
        runs["GluonCV %s" % model["gluoncv"]] = gluoncv_runner(
            model["gluoncv"], mx.nd.array(gluoncv_input(images)))
    if "torchvision" in peers and model["torchvision"]:
        runs["torchvision %s" % model["torchvision"]] = torchvision_runner(
            model["torchvision"], images)
    return runs, notes


def speed_table(medians, batch):
    ours = next(iter(medians.values()))
    rows = [(name, "%.2f" % (batch / t), "%.0f" % (t * 1e3), "%.2fx" % (t / ours))
            for name, t in medians.items()]
    return format_table(("runtime", "img/s", "ms/batch", "ours fp32 speed-up"), rows)


def goal_lines(key, batch, medians):
    """The issue's goals: at batch 1 on VGG16 SSD300, ours fp32 >= 1.0x OpenCV dnn and
    >= 1.3x GluonCV; INT8 >= 2x our fp32."""
    ours = next(iter(medians.values()))
    lines = []
    for prefix, goal in (("OpenCV dnn 4", 1.0), ("GluonCV", 1.3)):
        peer = next((t for name, t in medians.items() if name.startswith(prefix)), None)
        if peer is not None and key == "vgg16_300" and batch == 1:
            lines.append(("ours fp32 vs %s, batch 1" % prefix.split()[0], peer / ours, goal))
    int8 = medians.get(INT8_NAME)
    if int8 is not None:
        lines.append(("ours INT8 vs fp32, %s batch %d" % (key, batch), ours / int8, 2.0))
    return ["%-38s %.2fx (goal >= %.1fx) %s" % (what, ratio, goal,
                                                 "met" if ratio >= goal else "MISSED")
            for what, ratio, goal in lines]


def bench_model(key, args, peers, workdir, with_settings):
    model = MODELS[key]
    side = model["data_shape"]
    sym = get_symbol(model["network"], side, NUM_CLASSES, **NMS)
    twin, auxs = None, {}
    if model["opencv"]:
        prototxt, caffemodel, params = caffe_twin_params(sym, side, workdir)
        twin = (prototxt, caffemodel)
        print(check_against_opencv(sym, params, prototxt, caffemodel,
                                   ours_input(synthetic_images(1, side))))
    else:
        params, auxs = random_params(sym, side)
    if with_settings:
        print("\n%s, batch 1, load %s" % (model["title"], load_average()))
        data = mx.nd.array(ours_input(synthetic_images(1, side)))
        print(settings_table(sym, params, auxs, data, args.rounds, args.warmup))
    int8 = int8_model(sym, params, auxs, side, args.calib_images) if args.int8 else None
    goals = []
    for batch in args.batch_sizes:
        runs, notes = build_runners(model, sym, params, auxs, twin, batch, int8, peers)
        start_load = load_average()
        medians = interleaved_medians(runs, args.rounds, args.warmup,
                                      desc="%s batch %d" % (key, batch))
        print("\n%s, batch %d, median of %d runs, load %s -> %s"
              % (model["title"], batch, args.rounds, start_load, load_average()))
        print(speed_table(medians, batch))
        print("\n".join("  " + note for note in notes))
        goals += goal_lines(key, batch, medians)
    return goals


def main():
    operators.load()
    args = parse_args()
    logging.getLogger("tools.caffe_converter").setLevel(logging.ERROR)  # semantics warnings
    cv2.setNumThreads(THREADS)
    print("MXNet %s, OpenCV %s, OMP_NUM_THREADS=%d, %d CPUs, load %s at start"
          % (mx.__version__, cv2.__version__, THREADS, os.cpu_count(), load_average()))
    peers = available_peers(args.peers)
    goals = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, key in enumerate(args.models):
            goals += bench_model(key, args, peers, workdir, args.settings and index == 0)
    print("\nGoals\n" + "\n".join(goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
