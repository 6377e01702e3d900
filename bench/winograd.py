#!/usr/bin/env python
"""Our Winograd 3x3 convolution (operator/winograd_conv.cc, symbol/winograd.py) against
MXNet's oneDNN convolution and OpenCV dnn's Winograd convolution: every distinct 3x3 layer of
VGG16-reduced SSD300 alone, then the whole network at batch 1.

    python bench/winograd.py                    # layers and network, 10 rounds each
    python bench/winograd.py --rounds 20 --threads 1
    python bench/winograd.py --skip-layers

Layers: one Convolution (+ ReLU where the pass fuses it) at the network's input size, in
three runtimes taking turns run by run (bench/timing.py); the 'pass' column says whether
symbol/winograd.py's rule converts the layer.  OpenCV runs the same layer as a one-layer
Caffe model with Winograd on.  Network: ours with oneDNN, ours after use_winograd, OpenCV
dnn fp32 on the Caffe twin (bench/caffe_twin.py), same weights; the detections of the two
ours are compared first.  On a shared machine the timings are noisy: quote the load.
"""
import argparse
import os
import sys
import tempfile

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

from bench.timing import (configure_threads, format_table, interleaved_medians,  # noqa: E402
                          load_average)

THREADS = configure_threads(sys.argv)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from bench import inference  # noqa: E402
from symbol.winograd import use_winograd, winograd_layers, winograd_pays  # noqa: E402
from tools import quantize  # noqa: E402
from tools.caffe_converter.netspec import NetWriter  # noqa: E402

SIDE = 300


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--skip-network", action="store_true")
    return parser.parse_args()


def executor_runner(sym, arrays):
    exe = sym.simple_bind(mx.cpu(), grad_req="null", data=arrays["data"].shape)
    for name, value in arrays.items():
        exe.arg_dict[name][:] = value

    def run():
        exe.forward(is_train=False)
        exe.outputs[0].wait_to_read()
    return run


def layer_symbols(layer, relu):
    """(oneDNN Convolution [+ ReLU], WinogradConv3x3) for ``layer``."""
    data, weight, bias = mx.sym.var("data"), mx.sym.var("weight"), mx.sym.var("bias")
    conv = mx.sym.Convolution(data, weight, bias, kernel=(3, 3), pad=layer.pad,
                              num_filter=layer.out_channels)
    if relu:
        conv = mx.sym.Activation(conv, act_type="relu")
    return conv, mx.sym.WinogradConv3x3(data, weight, bias, num_filter=layer.out_channels,
                                        pad=layer.pad, relu=relu)


def opencv_layer_runner(arrays, layer, relu, workdir):
    net = NetWriter()
    net.input("data", arrays["data"].shape)
    top = net.add("Convolution", "conv", ["data"], blobs=[arrays["weight"], arrays["bias"]],
                  convolution_param=dict(num_output=layer.out_channels, kernel_h=3, kernel_w=3,
                                         pad_h=layer.pad[0], pad_w=layer.pad[1]))
    if relu:
        net.add("ReLU", "relu", [top], tops=[top])
    paths = net.save(os.path.join(workdir, "layer.prototxt"),
                     os.path.join(workdir, "layer.caffemodel"))
    cv_net = cv2.dnn.readNetFromCaffe(*paths)
    cv_net.enableWinograd(True)
    data = arrays["data"]

    def run():
        cv_net.setInput(data)
        return cv_net.forward()
    return run


def layer_table(sym, rounds, workdir):
    rows, seen, rng = [], set(), np.random.RandomState(0)
    for layer in winograd_layers(sym, {"data": (1, 3, SIDE, SIDE)}):
        key = (layer.in_channels, layer.out_channels, layer.pad, layer.out_height)
        if key in seen:
            continue
        seen.add(key)
        relu = layer.relu
        in_h = layer.out_height + 2 - 2 * layer.pad[0]
        in_w = layer.out_width + 2 - 2 * layer.pad[1]
        arrays = dict(
            data=rng.uniform(0, 1, (1, layer.in_channels, in_h, in_w)).astype(np.float32),
            weight=(rng.randn(layer.out_channels, layer.in_channels, 3, 3)
                    * np.sqrt(2 / (9 * layer.in_channels))).astype(np.float32),
            bias=rng.uniform(-0.5, 0.5, layer.out_channels).astype(np.float32))
        onednn, ours = layer_symbols(layer, relu)
        runs = {"oneDNN": executor_runner(onednn, arrays), "ours": executor_runner(ours, arrays),
                "OpenCV": opencv_layer_runner(arrays, layer, relu, workdir)}
        medians = interleaved_medians(runs, rounds, warmup=2, desc=layer.name)
        gflop = 2.0 * layer.in_channels * layer.out_channels * 9 * layer.out_height \
            * layer.out_width / 1e9
        rows.append(("%s%s" % (layer.name, "+relu" if relu else ""),
                     "%d>%d %dx%d p%d" % (layer.in_channels, layer.out_channels,
                                          layer.out_height, layer.out_width, layer.pad[0]),
                     "%.2f" % gflop, "%.2f" % (medians["oneDNN"] * 1e3),
                     "%.2f" % (medians["ours"] * 1e3), "%.2f" % (medians["OpenCV"] * 1e3),
                     "%.2fx" % (medians["oneDNN"] / medians["ours"]),
                     "%.2fx" % (medians["OpenCV"] / medians["ours"]),
                     "yes" if winograd_pays(layer) else "no"))
    return format_table(("layer", "shape", "GFLOP", "oneDNN ms", "ours ms", "OpenCV ms",
                         "ours vs oneDNN", "ours vs OpenCV", "pass"), rows)


def network_table(sym, rounds, workdir):
    prototxt, caffemodel, params = inference.caffe_twin_params(sym, SIDE, workdir)
    data = inference.ours_input(inference.synthetic_images(1, SIDE))
    fast = use_winograd(sym, {"data": data.shape}, enabled=True)
    runs = {"ours fp32 (oneDNN)": inference.module_runner(sym, params, {}, mx.nd.array(data)),
            "ours fp32 (Winograd)": inference.module_runner(fast, params, {},
                                                            mx.nd.array(data)),
            "OpenCV dnn %s fp32" % cv2.__version__: inference.opencv_runner(
                prototxt, caffemodel, np.ascontiguousarray(data[:, ::-1]))}
    reference, candidate = runs["ours fp32 (oneDNN)"](), runs["ours fp32 (Winograd)"]()
    notes = []
    for min_score in (0.01, inference.CONFIDENT):
        share, score_diff = quantize.detection_agreement(reference, candidate, min_score, 0.99)
        notes.append("Winograd keeps %.0f%% of oneDNN's detections >= %g (same class, IoU >= "
                     "0.99; mean |score diff| %.1e)" % (100 * share, min_score, score_diff))
    medians = interleaved_medians(runs, rounds, warmup=2, desc="VGG16 SSD300")
    base = medians["ours fp32 (Winograd)"]
    rows = [(name, "%.2f" % (1 / t), "%.0f" % (t * 1e3), "%.2fx" % (t / base))
            for name, t in medians.items()]
    return format_table(("runtime, batch 1", "img/s", "ms", "ours Winograd speed-up"),
                        rows) + "".join("\n  " + note for note in notes)


def main():
    args = parse_args()
    cv2.setNumThreads(THREADS)
    print("MXNet %s, OpenCV %s, OMP_NUM_THREADS=%d, %d CPUs, load %s at start"
          % (mx.__version__, cv2.__version__, THREADS, os.cpu_count(), load_average()))
    sym = inference.get_symbol("vgg16_reduced", SIDE, inference.NUM_CLASSES, **inference.NMS)
    with tempfile.TemporaryDirectory() as workdir:
        if not args.skip_layers:
            print("\nVGG16-reduced SSD300 3x3 layers, batch 1, median of %d runs"
                  % args.rounds)
            print(layer_table(sym, args.rounds, workdir))
            print("load %s" % load_average())
        if not args.skip_network:
            print("\nVGG16-reduced SSD300, batch 1, median of %d runs, load %s"
                  % (args.rounds, load_average()))
            print(network_table(sym, args.rounds, workdir))
            print("load %s" % load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
