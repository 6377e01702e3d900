#!/usr/bin/env python
"""CPU inference speed of SSD in one table: ours (fp32 with oneDNN, fp32 with our Winograd
convolutions, INT8) against the runtimes a user would pick -- OpenCV dnn, ONNX Runtime and
OpenVINO, each fp32 and INT8, GluonCV and torchvision -- all in one process, on the same
images, taking turns run by run, with the physical limit of the machine under them.

    python -m bench.inference                 # VGG16-SSD300 b1 and b8, shipped MobileNet b1
    python -m bench.inference --quick --runs mobilenet_224:1
    python -m bench.inference --runs vgg16_512:1,resnet50_512:1 --peers opencv,gluoncv

Same network and weights everywhere but GluonCV and torchvision: OpenCV runs a Caffe twin of
our graph (bench/caffe_twin.py, its random weights converted into ours; outputs compared
first), and ONNX Runtime, OpenVINO and OpenCV run our ONNX export (detect/onnx_export.py;
OpenCV the raw export decoded by our detection operator: it has no NonMaxSuppression).  INT8
peers run that export quantised by detect/onnx_quantize.py (static QDQ), calibrated on the
same images as ours (tools/quantize.py).  GluonCV and torchvision run their own model of the
same architecture and input size (random weights): only their speed compares.  Timed: the
forward pass and post-processing (decoding, NMS) of a prepared batch up to detections in host
memory; image decoding and resizing are left out for every runtime.
"""
import argparse
import json
import logging
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from bench.timing import (configure_threads, format_table, interleaved_medians,  # noqa: E402
                          load_average)

THREADS = configure_threads(sys.argv)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dataset.iterator import preprocess_image  # noqa: E402
from symbol import operators  # noqa: E402
from bench.caffe_twin import write_caffe_twin  # noqa: E402
from bench.random_weights import random_params  # noqa: E402
from bench.peers import (GLUON_MEAN, GLUON_STD, PEER_INSTALL, import_gluoncv,  # noqa: E402
                         peer_status)
from dataset import synthetic  # noqa: E402
from symbol.symbol_factory import get_symbol  # noqa: E402
from symbol.winograd import use_winograd  # noqa: E402
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

# network -> which peers run it.  GluonCV / torchvision names are their model-zoo entries;
# 'shipped': the trained demo model (detect/shipped.py) instead of random weights.
MODELS = {
    "vgg16_300": dict(title="VGG16-SSD300", network="vgg16_reduced", data_shape=300,
                      caffe_twin=True, gluoncv="ssd_300_vgg16_atrous_voc",
                      torchvision="ssd300_vgg16"),
    "vgg16_512": dict(title="VGG16-SSD512", network="vgg16_reduced", data_shape=512,
                      caffe_twin=True, gluoncv="ssd_512_vgg16_atrous_voc", torchvision=None),
    "resnet50_512": dict(title="ResNet50-SSD512", network="resnet50", data_shape=512,
                         caffe_twin=False, gluoncv="ssd_512_resnet50_v1_voc",
                         torchvision=None),
    "mobilenet_224": dict(title="MobileNet-0.25 SSD224", network="mobilenet_0.25",
                          data_shape=224, shipped=True, caffe_twin=False, gluoncv=None,
                          torchvision=None),
}
DEFAULT_RUNS = "vgg16_300:1,vgg16_300:8,mobilenet_224:1"
QUICK = dict(rounds=2, warmup=1, demo_rounds=1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The table's rows, in order: (name, precision, who runs it: 'ours' or a peer of PEER_INSTALL)
ROWS = (("ours fp32 (oneDNN)", "fp32", "ours"),
        ("ours fp32 (Winograd)", "fp32", "ours"),
        ("ours INT8 (oneDNN)", "int8", "ours"),
        ("OpenCV dnn fp32 (Caffe twin)", "fp32", "opencv"),
        ("OpenCV dnn fp32 (ONNX)", "fp32", "opencv"),
        ("OpenCV dnn INT8 (QDQ ONNX)", "int8", "opencv"),
        ("ONNX Runtime fp32", "fp32", "onnxruntime"),
        ("ONNX Runtime INT8 (QDQ)", "int8", "onnxruntime"),
        ("OpenVINO fp32", "fp32", "openvino"),
        ("OpenVINO INT8 (QDQ)", "int8", "openvino"),
        ("GluonCV", "fp32", "gluoncv"),
        ("torchvision", "fp32", "torchvision"))
# each precision's ratios are to this row of ours
OURS = {"fp32": "ours fp32 (Winograd)", "int8": "ours INT8 (oneDNN)"}
GEMM_SIDE = 2048   # the sgemm that measures the machine: 2 * 2048^3 = 17 GFLOP


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help="comma list of MODEL:BATCH, models: %s" % ", ".join(MODELS))
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed runs per runtime (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--quick", action="store_true",
                        help="%(rounds)d rounds, %(warmup)d warm-up (for tests)" % QUICK)
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for every runtime (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--peers", default=",".join(PEER_INSTALL),
                        help="comma list of peers to run ('' for ours only)")
    parser.add_argument("--calib-images", type=int, default=16,
                        help="synthetic images every INT8 model is calibrated on")
    parser.add_argument("--demo-rounds", type=int, default=3,
                        help="fresh `python demo.py` processes timed end to end (0: none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.demo_rounds = (
            QUICK["rounds"], QUICK["warmup"], QUICK["demo_rounds"])
    try:
        args.runs = [(model, int(batch)) for model, batch in
                     (run.split(":") for run in args.runs.split(","))]
    except ValueError:
        parser.error("--runs: expected MODEL:BATCH,..., got %r" % args.runs)
    unknown = sorted({m for m, _ in args.runs} - set(MODELS))
    if unknown:
        parser.error("--runs: unknown model(s) %s; choose from %s"
                     % (", ".join(unknown), ", ".join(MODELS)))
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


def int8_model(sym, args, auxs, side, calib_images, workdir):
    """Our INT8 model, calibrated (naive min/max) on synthetic training images in a child
    process.  MXNet's calibration runs operators from a second engine thread, whose OpenMP
    team then stays: 4 OpenMP threads on 2 cores, so libgomp barely spins before its threads
    sleep, and every later forward of every MXNet model in the process pays the wake-ups
    (measured here: the shipped MobileNet 2.8 ms per image before, 9.9 ms after)."""
    fp32, int8 = os.path.join(workdir, "fp32"), os.path.join(workdir, "int8")
    mx.model.save_checkpoint(fp32, 0, sym, args, auxs, remove_amp_cast=False)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(quantize_checkpoint, (fp32, int8, side, calib_images))
    return mx.model.load_checkpoint(int8, 0)


def quantize_checkpoint(fp32, int8, side, calib_images):
    """Quantize checkpoint ``fp32``-0000 into ``int8``-0000 (runs in int8_model's child)."""
    operators.load()
    sym, args, auxs = mx.model.load_checkpoint(fp32, 0)
    images = ours_input(synthetic_images(calib_images, side, "train"))
    calib = mx.io.NDArrayIter(mx.nd.array(images), batch_size=min(8, calib_images))
    qsym, qargs, qauxs = quantize.quantize(sym, args, auxs, calib, calib_images, "naive")
    mx.model.save_checkpoint(int8, 0, qsym, qargs, qauxs, remove_amp_cast=False)


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


class ChildRunner:
    """A runner made and run in a spawned process, called from this one.  torch brings its own
    libgomp.so.1, but the dynamic loader hands it the one MXNet loaded first: torch's OpenMP
    team then counts against MXNet's, and with more OpenMP threads than cores libgomp stops
    spinning between parallel regions (measured: the shipped MobileNet 2.8 ms per image after
    a VGG16 column without torchvision, 11.1 ms with it).  In a process of its own, it runs
    as it would for a user who runs only it; calls take turns with the others as before."""

    def __init__(self, make, *args):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve_runner, args=(child, make, args),
                                       daemon=True)
        self.process.start()
        self.call("made?")

    def call(self, request):
        self.connection.send(request)
        status, message = self.connection.recv()
        if status != "ok":
            raise RuntimeError(message)

    def __call__(self):
        self.call("run")

    def close(self):
        self.connection.send("stop")
        self.process.join()


def serve_runner(connection, make, args):
    """The child of :class:`ChildRunner`: make the runner, then run it on each request."""
    try:
        run = make(*args)
    except Exception as err:  # noqa: BLE001 -- reported to the parent as the peer's failure
        connection.recv()
        connection.send(("error", failure_line(err)))
        return
    connection.recv()  # "made?"
    connection.send(("ok", None))
    while connection.recv() != "stop":
        run()
        connection.send(("ok", None))


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


# ------------------------------------------------------------------------------ physical limit

def graph_gflop(sym, data_shape):
    """GFLOP per image of the convolutions and fully connected layers of ``sym`` (2 per
    multiply-add, as the graph computes them: padded head filters included)."""
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(data=data_shape)
    shapes = dict(zip(internals.list_arguments(), arg_shapes))
    shapes.update(zip(internals.list_outputs(), out_shapes))
    nodes, flop = json.loads(sym.tojson())["nodes"], 0
    for node in nodes:
        if node["op"] in ("Convolution", "FullyConnected"):
            out = shapes[node["name"] + "_output"]
            source = nodes[node["inputs"][1][0]]   # a variable, or a padding Concat
            weight = shapes[source["name"] + ("" if source["op"] == "null" else "_output")]
            # multiply-adds per output value: the weight's fan-in (C_in / groups x kernel)
            flop += 2 * np.prod(out[1:]) * np.prod(weight[1:])
    return flop / 1e9


def gemm_gflops(rounds=5):
    """The machine's measured single-precision GEMM rate: a large sgemm through MXNet's
    oneDNN (FullyConnected), median of ``rounds``."""
    rng = np.random.RandomState(0)
    a, b = (mx.nd.array(rng.uniform(-1, 1, (GEMM_SIDE, GEMM_SIDE))) for _ in range(2))
    run = lambda: mx.nd.FullyConnected(a, b, num_hidden=GEMM_SIDE,  # noqa: E731
                                       no_bias=True).wait_to_read()
    seconds = interleaved_medians({"sgemm": run}, rounds, warmup=1, desc="sgemm")["sgemm"]
    return 2.0 * GEMM_SIDE ** 3 / seconds / 1e9


# ------------------------------------------------------------------------------ the models

def shipped_model():
    """(symbol, arg_params, aux_params) of the shipped demo model."""
    from detect.shipped import SHIPPED_MODEL
    from symbol import model_io
    prefix = model_io.expand_prefix(SHIPPED_MODEL["prefix"], SHIPPED_MODEL["network"],
                                    SHIPPED_MODEL["data_shape"])
    prefix, _, settings = model_io.open_model(prefix, {}, {})
    return model_io.inference_model(prefix, model_io.resolve_epoch(prefix, None), settings)


def onnx_models(sym, args, auxs, side, calib, workdir):
    """{(raw, precision): path}: our ONNX export, full and raw, fp32 and INT8 (QDQ,
    calibrated on ``calib``)."""
    from detect.onnx_export import export_onnx
    from detect.onnx_quantize import quantize_onnx
    paths = {}
    for raw in (False, True):
        name = os.path.join(workdir, "ssd%s" % ("-raw" if raw else ""))
        paths[raw, "fp32"] = export_onnx(sym, args, auxs, (side, side), name + ".onnx", raw)
        paths[raw, "int8"] = name + "_int8.onnx"
        quantize_onnx(paths[raw, "fp32"], paths[raw, "int8"], [calib], len(calib))
    return paths


class Prepared:
    """One network, ready to run in every runtime: weights, the Caffe twin, our INT8 model
    and the ONNX exports."""

    def __init__(self, key, peers, calib_images, workdir):
        model = MODELS[key]
        self.key, self.model, self.side = key, model, model["data_shape"]
        self.twin, self.notes = None, []
        workdir = os.path.join(workdir, key)
        os.makedirs(workdir)
        if model.get("shipped"):
            self.sym, self.args, self.auxs = shipped_model()
        else:
            self.sym = get_symbol(model["network"], self.side, NUM_CLASSES, **NMS)
        if model["caffe_twin"]:
            prototxt, caffemodel, self.args = caffe_twin_params(self.sym, self.side, workdir)
            self.auxs, self.twin = {}, (prototxt, caffemodel)
            self.notes.append(check_against_opencv(
                self.sym, self.args, prototxt, caffemodel,
                ours_input(synthetic_images(1, self.side))))
        elif not model.get("shipped"):
            self.args, self.auxs = random_params(self.sym, self.side)
        calib = ours_input(synthetic_images(calib_images, self.side, "train"))
        self.int8 = int8_model(self.sym, self.args, self.auxs, self.side, calib_images,
                               workdir)
        self.onnx = None
        if "onnxruntime" in peers:  # it quantises the export every ONNX row runs
            self.onnx = onnx_models(self.sym, self.args, self.auxs, self.side, calib, workdir)
        self.gflop = graph_gflop(self.sym, (1, 3, self.side, self.side))


def onnx_runner(runtime, path, data):
    from detect.runtimes import open_onnx_runtime
    session = open_onnx_runtime(runtime, path)
    return lambda: session.detect(data)


def opencv_onnx_runner(path, sym, data):
    from detect.runtimes import OpenCvRuntime, detection_decoder
    session = OpenCvRuntime(cv2, path, detection_decoder(sym))
    return lambda: session.detect(data)


def runners(prepared, batch, peers):
    """{row name: run() or the reason it does not run} for one network and batch size, and
    notes on how the detections of each agree with ours fp32 (oneDNN)."""
    model, sym, args, auxs = prepared.model, prepared.sym, prepared.args, prepared.auxs
    images = synthetic_images(batch, prepared.side)
    data = ours_input(images)
    nd_data = mx.nd.array(data)
    shapes = {"data": data.shape}
    runs = {"ours fp32 (oneDNN)": module_runner(sym, args, auxs, nd_data),
            "ours fp32 (Winograd)": module_runner(use_winograd(sym, shapes, enabled=True),
                                                  args, auxs, nd_data),
            "ours INT8 (oneDNN)": module_runner(*prepared.int8, nd_data)}
    onnx = prepared.onnx or {}
    peer_runs = {
        "OpenCV dnn fp32 (Caffe twin)": ("opencv", prepared.twin and (
            lambda: opencv_runner(*prepared.twin, np.ascontiguousarray(data[:, ::-1])))),
        "OpenCV dnn fp32 (ONNX)": ("opencv", onnx and (
            lambda: opencv_onnx_runner(onnx[True, "fp32"], sym, data))),
        "OpenCV dnn INT8 (QDQ ONNX)": ("opencv", onnx and (
            lambda: opencv_onnx_runner(onnx[True, "int8"], sym, data))),
        "ONNX Runtime fp32": ("onnxruntime", onnx and (
            lambda: onnx_runner("onnxruntime", onnx[False, "fp32"], data))),
        "ONNX Runtime INT8 (QDQ)": ("onnxruntime", onnx and (
            lambda: onnx_runner("onnxruntime", onnx[False, "int8"], data))),
        "OpenVINO fp32": ("openvino", onnx and (
            lambda: onnx_runner("openvino", onnx[False, "fp32"], data))),
        "OpenVINO INT8 (QDQ)": ("openvino", onnx and (
            lambda: onnx_runner("openvino", onnx[False, "int8"], data))),
        "GluonCV": ("gluoncv", model["gluoncv"] and (
            lambda: gluoncv_runner(model["gluoncv"], mx.nd.array(gluoncv_input(images))))),
        "torchvision": ("torchvision", model["torchvision"] and (
            lambda: ChildRunner(torchvision_runner, model["torchvision"], images))),
    }
    failures = []
    for name, (peer, make) in peer_runs.items():
        if peer not in peers:
            runs[name] = "skipped"
        elif not make:
            runs[name] = "n/a"
        else:
            try:
                runs[name] = make()
            except Exception as err:  # noqa: BLE001 -- a peer that cannot load the model
                runs[name] = "failed"
                failures.append("%s failed: %s" % (name, failure_line(err)))
    return runs, [agreement_notes(runs)] + failures


def failure_line(err):
    """The informative line of a peer's error, without OpenCV's source locations."""
    lines = [re.sub(r"OpenCV\([\d.]+\) \S+: error: \([^)]*\) ", "", line.strip("> "))
             for line in str(err).splitlines() if line.strip("> ")]
    return next((line for line in lines if "Node [" in line), lines[0] if lines else
                type(err).__name__)[:300]


def agreement_notes(runs):
    """How many of ours fp32 (oneDNN)'s confident detections each runtime of ours' output
    format keeps (GluonCV, torchvision and the Caffe twin have their own)."""
    reference = runs["ours fp32 (oneDNN)"]()
    kept = []
    for name, run in runs.items():
        if callable(run) and name != "ours fp32 (oneDNN)" and "Caffe" not in name \
                and name not in ("GluonCV", "torchvision"):
            share, _ = quantize.detection_agreement(reference, run(), CONFIDENT)
            kept.append("%s %.0f%%" % (name, 100 * share))
    count = int(((reference[:, :, 0] >= 0) & (reference[:, :, 1] >= CONFIDENT)).sum())
    return "of the %d detections >= %.1f of ours fp32 (oneDNN), kept (same class, IoU >= " \
           "0.5): %s" % (count, CONFIDENT, ", ".join(kept))


# ------------------------------------------------------------------------------ demo.py

def wall_seconds(command):
    """Wall-clock seconds of ``command`` (argv) run in a fresh process from the repository."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def demo_latency(rounds, workdir):
    """What a user waits for: `python demo.py` on its demo images with the shipped model, from
    process start to the detections JSON written, and how much of that `import mxnet` is
    (each in fresh processes, taking turns); the median seconds of each, as a note."""
    from detect.pipeline import expand_images
    from detect.shipped import DEMO_IMAGES
    json_path = os.path.join(workdir, "demo", "detections.json")
    demo = [sys.executable, "demo.py", "--save-dir", os.path.dirname(json_path),
            "--json", json_path]
    import_only = [sys.executable, "-c", "import mxssd_compat, mxnet"]
    times = {"demo": [], "import": []}
    for _ in tqdm(range(rounds), desc="demo.py", unit="round", leave=False):
        times["demo"].append(wall_seconds(demo))
        times["import"].append(wall_seconds(import_only))
    with open(json_path) as f:
        images = len(json.load(f)["results"])
    count = len(expand_images(DEMO_IMAGES)[0])
    if images != count:
        raise RuntimeError("demo.py wrote detections for %d of the %d demo images"
                           % (images, count))
    return ("demo.py end to end (shipped model, %d images, process start to JSON written): "
            "%.2f s, of which `import mxnet` alone %.2f s (median of %d fresh processes each)"
            % (images, statistics.median(times["demo"]), statistics.median(times["import"]),
               rounds))


# ------------------------------------------------------------------------------ the table

def cell(result, name, precision, medians_ours, batch):
    """(ms per image, ours' speed-up) of one row in one column."""
    if isinstance(result, str):
        return result, ""
    ours = medians_ours[precision]
    return "%.1f" % (result * 1e3 / batch), "%.2fx" % (result / ours)


def one_table(columns, gemm):
    """``columns``: [(title, batch, gflop, {row: seconds per batch or reason})]."""
    header = ["runtime"]
    for title, batch, _, _ in columns:
        header += ["%s b%d ms/img" % (title, batch), "ours x"]
    rows = []
    for name, precision, _ in ROWS:
        row = [name]
        for _, batch, _, results in columns:
            ours = {p: results[OURS[p]] for p in OURS}
            row += cell(results.get(name, "n/a"), name, precision, ours, batch)
        rows.append(row)
    limit = ["physical limit (%.0f GFLOP/s sgemm)" % gemm]
    for _, batch, gflop, _ in columns:
        limit += ["%.1f" % (gflop / gemm * 1e3), ""]
    rows.append(limit)
    return format_table(header, rows)


def main(argv=None):
    operators.load()
    args = parse_args(argv)
    logging.getLogger("tools.caffe_converter").setLevel(logging.ERROR)  # semantics warnings
    cv2.setNumThreads(THREADS)
    print("MXNet %s, OpenCV %s, OMP_NUM_THREADS=%d, %d CPUs, load %s at start"
          % (mx.__version__, cv2.__version__, THREADS, os.cpu_count(), load_average()))
    peers, skipped = [], []
    for peer in args.peers:
        reason = peer_status(peer)
        (skipped.append("%s (%s): %s" % (peer, reason, PEER_INSTALL[peer])) if reason
         else peers.append(peer))
    start, columns, notes = time.time(), [], []
    with tempfile.TemporaryDirectory() as workdir:
        prepared = {}
        for key, batch in args.runs:
            if key not in prepared:
                prepared[key] = Prepared(key, peers, args.calib_images, workdir)
                notes += ["%s: %s" % (MODELS[key]["title"], n) for n in prepared[key].notes]
            model = prepared[key]
            runs, column_notes = runners(model, batch, peers)
            timed = {name: run for name, run in runs.items() if callable(run)}
            load = load_average()
            medians = interleaved_medians(timed, args.rounds, args.warmup,
                                          desc="%s b%d" % (key, batch))
            columns.append((MODELS[key]["title"], batch, model.gflop,
                            dict(runs, **medians)))
            notes.append("%s b%d (load %s -> %s): %s" % (MODELS[key]["title"], batch, load,
                                                         load_average(), column_notes[0]))
            notes += ["%s b%d: %s" % (MODELS[key]["title"], batch, n) for n in column_notes[1:]]
            for run in timed.values():
                if isinstance(run, ChildRunner):
                    run.close()
        if args.demo_rounds > 0:
            notes.append(demo_latency(args.demo_rounds, workdir))
    # Last: MXNet runs the sgemm on another engine thread, whose OpenMP team would slow
    # every later forward (see int8_model).
    gemm = gemm_gflops()
    print("\nms per image, median of %d runs (warm-up %d); 'ours x': the row's time over "
          "ours of the same precision (%s), > 1 = ours faster; one run, %.0f s"
          % (args.rounds, args.warmup, " / ".join(OURS.values()), time.time() - start))
    print(one_table(columns, gemm))
    print("physical limit: the network's GFLOP per image (%s), counted from the graph, at the "
          "measured %dx%d sgemm rate (Winograd needs fewer multiplications, so it can go under)"
          % (", ".join("%s %.2f" % (MODELS[k]["title"], m.gflop) for k, m in prepared.items()),
             GEMM_SIDE, GEMM_SIDE))
    print("\n".join("  " + note for note in notes))
    for line in skipped:
        print("skipped %s" % line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
