#!/usr/bin/env python
"""Where the time goes: per convolution layer of VGG16 SSD300 at batch 1, ours fp32 and
INT8 (oneDNN primitives and their run times, from DNNL_VERBOSE) next to OpenCV dnn with and
without its Winograd convolutions (getPerfProfile), same network and weights.

    python -m bench.profile_layers               # median of 5 runs per runtime
    python -m bench.profile_layers --data-shape 512

Layers with the same shape (e.g. conv3_2 and conv3_3) share a row.  The totals cover the
convolutions; the OpenCV total also lists its other layers.
"""
import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from bench.timing import configure_threads, format_table, load_average  # noqa: E402

THREADS = configure_threads(sys.argv)
os.environ["DNNL_VERBOSE"] = "1"  # oneDNN reads it when it creates its first primitive

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from bench import inference  # noqa: E402

SMALL_MS = 5.0  # layers faster than this share one row
VERBOSE_CONV = re.compile(r"dnnl_verbose,exec,cpu,convolution,([^,]+),.*,mb\d+_ic(\d+)oc(\d+)_"
                          r"ih\d+oh(\d+)kh(\d+)sh(\d+)dh(\d+).*,([\d.]+)$")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-shape", type=int, choices=(300, 512), default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    return parser.parse_args()


def captured_stdout(run):
    """What the C libraries print on file descriptor 1 while ``run()`` runs."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile("w+") as capture:
        os.dup2(capture.fileno(), 1)
        try:
            run()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        return capture.read()


def quietly(make):
    """``make()``, with oneDNN's verbose lines (printed while it runs) thrown away."""
    result = []
    captured_stdout(lambda: result.append(make()))
    return result[0]


def first_int(attrs, key):
    return int(attrs.get(key, "(1, 1)").strip("()").split(",")[0])


def layer_geometry(sym, side):
    """{(in channels, out channels, out side, kernel, stride, dilation - 1): [layer names]}
    of the graph's convolutions (oneDNN's verbose lines name convolutions this way)."""
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(data=(1, 3, side, side))
    args = dict(zip(internals.list_arguments(), arg_shapes))
    outs = dict(zip(internals.list_outputs(), out_shapes))
    groups = defaultdict(list)
    for node in json.loads(sym.tojson())["nodes"]:
        if node["op"] == "Convolution":
            name, attrs = node["name"], node["attrs"]
            weight, out = args[name + "_weight"], outs[name + "_output"]
            groups[(weight[1], weight[0], out[2], weight[2], first_int(attrs, "stride"),
                    first_int(attrs, "dilate") - 1)].append(name)
    return groups


def onednn_times(run, rounds):
    """{conv key: (median ms per run, implementation)} from oneDNN's verbose lines."""
    per_run, impls = [], {}
    for _ in range(rounds):
        totals = defaultdict(float)
        for line in captured_stdout(run).splitlines():
            match = VERBOSE_CONV.match(line)
            if match:
                impl, *geometry, ms = match.groups()
                key = tuple(map(int, geometry))
                totals[key] += float(ms)
                impls[key] = impl
        per_run.append(totals)
    return {key: (statistics.median(r.get(key, 0.0) for r in per_run), impls[key])
            for key in impls}


def opencv_times(net, bgr, rounds):
    """{layer name: median ms} from OpenCV's per-layer profile."""
    samples = defaultdict(list)
    for _ in range(rounds):
        net.setInput(bgr)
        net.forward()
        _, layers = net.getPerfProfile()
        for name, ticks in zip(net.getLayerNames(), layers.ravel()):
            samples[name].append(ticks * 1e3 / cv2.getTickFrequency())
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    args = parse_args()
    cv2.setNumThreads(THREADS)
    side = args.data_shape
    sym = inference.get_symbol("vgg16_reduced", side, inference.NUM_CLASSES, **inference.NMS)
    with tempfile.TemporaryDirectory() as workdir:
        prototxt, caffemodel, params = quietly(
            lambda: inference.caffe_twin_params(sym, side, workdir))
        data = mx.nd.array(inference.ours_input(inference.synthetic_images(1, side)))
        fp32 = quietly(lambda: inference.module_runner(sym, params, {}, data))
        int8 = quietly(lambda: inference.module_runner(
            *inference.int8_model(sym, params, {}, side, 16, workdir), data))
        bgr = np.ascontiguousarray(data.asnumpy()[:, ::-1])
        opencv = {}
        for winograd in (True, False):
            net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
            net.enableWinograd(winograd)
            opencv[winograd] = opencv_times(net, bgr, args.rounds + 1)  # first: set-up
    for run in (fp32, int8):
        captured_stdout(run)  # untimed: oneDNN creates its kernels on the first call
    ours, ours_int8 = onednn_times(fp32, args.rounds), onednn_times(int8, args.rounds)
    rows, totals, small = [], np.zeros(4), np.zeros(4)
    for key, names in sorted(layer_geometry(sym, side).items(),
                             key=lambda item: -ours.get(item[0], (0.0, ""))[0]):
        ic, oc, out_side, kernel, _, _ = key
        gflop = 2.0 * ic * oc * kernel * kernel * out_side * out_side * len(names) / 1e9
        times = np.array([ours.get(key, (0.0, ""))[0], ours_int8.get(key, (0.0, ""))[0],
                          sum(opencv[True].get(n, 0.0) for n in names),
                          sum(opencv[False].get(n, 0.0) for n in names)])
        totals += times
        if times[0] < SMALL_MS:
            small += times
            continue
        rows.append((",".join(names)[:40], "%.2f" % gflop, "%.1f" % times[0],
                     ours.get(key, (0, "?"))[1], "%.1f" % times[1], "%.1f" % times[2],
                     "%.1f" % times[3]))
    rows.append(("layers under %g ms" % SMALL_MS, "", "%.1f" % small[0], "", "%.1f" % small[1],
                 "%.1f" % small[2], "%.1f" % small[3]))
    rows.append(("all convolutions", "", "%.0f" % totals[0], "", "%.0f" % totals[1],
                 "%.0f" % totals[2], "%.0f" % totals[3]))
    rows.append(("OpenCV, every layer", "", "", "", "", "%.0f" % sum(opencv[True].values()),
                 "%.0f" % sum(opencv[False].values())))
    print("VGG16-reduced SSD%d, batch 1, OMP_NUM_THREADS=%d, median of %d runs, load %s"
          % (side, THREADS, args.rounds, load_average()))
    print(format_table(("layers", "GFLOP", "ours ms", "oneDNN kernel", "INT8 ms",
                        "OpenCV ms", "no Winograd"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
