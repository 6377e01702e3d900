"""SSD models written as Caffe files, run by OpenCV's Caffe importer and, converted, by MXNet
with the project's MultiBoxPrior / MultiBoxDetection: same detections (count, classes,
scores and boxes within 1e-4)."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from tools.caffe_converter import compare, convert_model, convert_symbol
from tools.caffe_converter.caffe_io import CaffeError
from tools.caffe_converter.compare import (DEFAULT_MEAN_BGR, detection_differences,
                                           mxnet_detections, opencv_detections, opencv_forward)
from tools.caffe_converter.converter import convert
from tools.caffe_converter.netspec import NetWriter

TOLERANCE = 1e-4
CONFIDENT = 0.5  # see README "DetectionOutput": both runtimes agree above this score
VARIANCES = [0.1, 0.1, 0.2, 0.2]
DETECTION = dict(share_location=True, background_label_id=0, code_type="CENTER_SIZE",
                 nms_param=dict(nms_threshold=0.45, top_k=400), keep_top_k=200)


def add_conv(net, rng, name, bottom, cin, cout, kernel=3, pad=1, stride=1, dilation=1,
             relu=True, gain=1.0):
    """Convolution (+ in-place ReLU) with He-initialised random weights times ``gain``."""
    scale = np.float32(gain * np.sqrt(2.0 / (cin * kernel * kernel)))
    weight = rng.standard_normal((cout, cin, kernel, kernel), dtype=np.float32) * scale
    params = dict(num_output=cout, kernel_size=kernel, pad=pad, stride=stride)
    if dilation > 1:
        params["dilation"] = dilation
    net.add("Convolution", name, [bottom],
            blobs=[weight, rng.standard_normal(cout, dtype=np.float32) * np.float32(0.1)],
            convolution_param=params)
    if relu:
        net.add("ReLU", name + "_relu", [name], tops=[name])
    return name


def priors_per_cell(prior):
    ratios = len(prior.get("aspect_ratio", [])) * (2 if prior.get("flip", True) else 1)
    return 1 + ("max_size" in prior) + ratios


def add_multibox_head(net, rng, sources, num_classes, detection, conf_gain):
    """SSD-Caffe's head: per source loc/conf convs -> Permute -> Flatten, PriorBox; Concat;
    softmax over classes; DetectionOutput."""
    outputs = {"loc": [], "conf": [], "priorbox": []}
    for source, channels, prior in sources:
        anchors = priors_per_cell(prior)
        for kind, values, gain in (("loc", 4, 0.3), ("conf", num_classes, conf_gain)):
            name = "%s_mbox_%s" % (source, kind)
            add_conv(net, rng, name, source, channels, anchors * values, relu=False, gain=gain)
            net.add("Permute", name + "_perm", [name], permute_param=dict(order=[0, 2, 3, 1]))
            net.add("Flatten", name + "_flat", [name + "_perm"], flatten_param=dict(axis=1))
            outputs[kind].append(name + "_flat")
        name = source + "_mbox_priorbox"
        net.add("PriorBox", name, [source, "data"], prior_box_param=prior)
        outputs["priorbox"].append(name)
    net.add("Concat", "mbox_loc", outputs["loc"], concat_param=dict(axis=1))
    net.add("Concat", "mbox_conf", outputs["conf"], concat_param=dict(axis=1))
    net.add("Concat", "mbox_priorbox", outputs["priorbox"], concat_param=dict(axis=2))
    net.add("Reshape", "mbox_conf_reshape", ["mbox_conf"],
            reshape_param=dict(shape=dict(dim=[0, -1, num_classes])))
    net.add("Softmax", "mbox_conf_softmax", ["mbox_conf_reshape"], softmax_param=dict(axis=2))
    net.add("Flatten", "mbox_conf_flatten", ["mbox_conf_softmax"], flatten_param=dict(axis=1))
    net.add("DetectionOutput", "detection_out", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
            detection_output_param=dict(num_classes=num_classes, **detection))


def build_small_ssd(rng, confidence_threshold=CONFIDENT):
    """Two sources (16x16 normalised, 9x9 after a ceil-rounded pooling) on a 64x64 input:
    16*16*4 + 9*9*6 = 1510 priors."""
    net = NetWriter("small_ssd")
    net.input("data", (1, 3, 64, 64))
    add_conv(net, rng, "conv1", "data", 3, 16, gain=0.01)
    net.add("Pooling", "pool1", ["conv1"], pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
    add_conv(net, rng, "conv2", "pool1", 16, 32)
    net.add("Pooling", "pool2", ["conv2"], pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
    add_conv(net, rng, "conv3", "pool2", 32, 32)
    net.add("Normalize", "conv3_norm", ["conv3"],
            blobs=[np.full(32, 20.0) + rng.standard_normal(32)],
            norm_param=dict(across_spatial=False, channel_shared=False))
    net.add("Pooling", "pool3", ["conv3"],
            pooling_param=dict(pool="MAX", kernel_size=3, stride=2, pad=1))
    add_conv(net, rng, "conv4", "pool3", 32, 32)
    sources = [
        ("conv3_norm", 32, dict(min_size=8, max_size=16, aspect_ratio=[2], flip=True, clip=False,
                                step=4, offset=0.5, variance=VARIANCES)),
        ("conv4", 32, dict(min_size=24, max_size=40, aspect_ratio=[2, 3], flip=True, clip=False,
                           step=8, variance=VARIANCES)),
    ]
    detection = dict(DETECTION, confidence_threshold=confidence_threshold)
    add_multibox_head(net, rng, sources, 5, detection, conf_gain=0.2)
    return net


def build_vgg16_ssd300(rng):
    """The published VGG16 SSD300 VOC deploy graph (SSD-Caffe's layer names and parameters)."""
    net = NetWriter("VGG_VOC0712_SSD_300x300_deploy")
    net.input("data", (1, 3, 300, 300))
    bottom, channels = "data", 3
    for block, (width, repeats) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        for i in range(1, repeats + 1):
            # the first convolution's gain keeps activations O(1) for raw pixel values
            bottom = add_conv(net, rng, "conv%d_%d" % (block, i), bottom, channels, width,
                              gain=0.01 if channels == 3 else 1.0)
            channels = width
        if block < 5:
            net.add("Pooling", "pool%d" % block, [bottom],
                    pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
            bottom = "pool%d" % block
    net.add("Pooling", "pool5", [bottom],
            pooling_param=dict(pool="MAX", kernel_size=3, stride=1, pad=1))
    add_conv(net, rng, "fc6", "pool5", 512, 1024, pad=6, dilation=6)
    add_conv(net, rng, "fc7", "fc6", 1024, 1024, kernel=1, pad=0)
    bottom, channels = "fc7", 1024
    for name, middle, width, stride, pad in [("conv6", 256, 512, 2, 1), ("conv7", 128, 256, 2, 1),
                                             ("conv8", 128, 256, 1, 0), ("conv9", 128, 256, 1, 0)]:
        add_conv(net, rng, name + "_1", bottom, channels, middle, kernel=1, pad=0)
        bottom = add_conv(net, rng, name + "_2", name + "_1", middle, width, stride=stride, pad=pad)
        channels = width
    net.add("Normalize", "conv4_3_norm", ["conv4_3"], blobs=[np.full(512, 20.0)],
            norm_param=dict(across_spatial=False, channel_shared=False,
                            scale_filler=dict(type="constant", value=20)))
    geometry = [("conv4_3_norm", 512, 30, 60, [2], 8), ("fc7", 1024, 60, 111, [2, 3], 16),
                ("conv6_2", 512, 111, 162, [2, 3], 32), ("conv7_2", 256, 162, 213, [2, 3], 64),
                ("conv8_2", 256, 213, 264, [2], 100), ("conv9_2", 256, 264, 315, [2], 300)]
    sources = [(source, width, dict(min_size=low, max_size=high, aspect_ratio=ratios, flip=True,
                                    clip=False, variance=VARIANCES, step=step, offset=0.5))
               for source, width, low, high, ratios, step in geometry]
    add_multibox_head(net, rng, sources, 21, dict(DETECTION, confidence_threshold=0.01),
                      conf_gain=0.5)
    return net


def run_detection(tmp_path, net, seed=0):
    """(converted model, MXNet output, OpenCV output, file paths) on one random image."""
    paths = net.save(str(tmp_path / "deploy.prototxt"), str(tmp_path / "model.caffemodel"))
    shape = tuple(net.net.layer[0].input_param.shape[0].dim)
    bgr = np.random.default_rng(seed).uniform(-128, 128, shape).astype(np.float32)
    expected = opencv_forward(*paths, bgr)[0]
    model = convert(*paths)
    actual = model.forward(data=np.ascontiguousarray(bgr[:, ::-1]))[0]
    return model, actual, expected, paths


def assert_same_detections(actual, expected):
    count, classes, scores, boxes = detection_differences(actual, expected)
    assert count == 0, "MXNet has %d detections, OpenCV %d" % (len(actual), len(expected))
    assert classes == 0 and scores < TOLERANCE and boxes < TOLERANCE


def test_small_ssd_detections_match_opencv(tmp_path):
    net = build_small_ssd(np.random.default_rng(0))
    _, actual, expected, _ = run_detection(tmp_path, net)
    ours, theirs = mxnet_detections(actual), opencv_detections(expected)
    assert len(theirs) >= 20  # enough detections for the comparison to mean something
    assert_same_detections(ours, theirs)


def test_small_ssd_priors_and_variances_match_opencv(tmp_path):
    net = build_small_ssd(np.random.default_rng(0))
    model, _, _, paths = run_detection(tmp_path, net)
    caffe_priors = opencv_forward(*paths, np.zeros((1, 3, 64, 64), np.float32),
                                  ["mbox_priorbox"])[0]
    ours = model.forward("mbox_priorbox_output", data=np.zeros((1, 3, 64, 64), np.float32))[0]
    assert ours.shape == (1, 16 * 16 * 4 + 9 * 9 * 6, 4)
    assert np.abs(ours.reshape(-1) - caffe_priors[0, 0]).max() < TOLERANCE
    detection = json.loads(model.symbol.tojson())["nodes"][-1]
    assert detection["op"] == "MultiBoxDetection"
    variances = json.loads(detection["attrs"]["variances"].replace("(", "[").replace(")", "]"))
    np.testing.assert_allclose(caffe_priors[0, 1].reshape(-1, 4), np.tile(variances, (1510, 1)),
                               rtol=1e-6)


def test_low_confidence_threshold_keeps_confident_detections_identical(tmp_path):
    """At confidence_threshold 0.01 Caffe may keep several classes per prior; rows scoring
    >= 0.5 still agree."""
    net = build_small_ssd(np.random.default_rng(0), confidence_threshold=0.01)
    _, actual, expected, _ = run_detection(tmp_path, net)
    assert len(opencv_detections(expected)) > len(opencv_detections(expected, CONFIDENT))
    theirs = opencv_detections(expected, CONFIDENT)
    assert len(theirs) >= 20
    assert_same_detections(mxnet_detections(actual, CONFIDENT), theirs)


def test_convert_model_cli_output_loads_with_module(tmp_path):
    net = build_small_ssd(np.random.default_rng(0))
    _, _, expected, (prototxt, caffemodel) = run_detection(tmp_path, net)
    prefix = str(tmp_path / "out" / "ssd_caffe")
    assert convert_model.main([prototxt, caffemodel, prefix, "--no-progress"]) == 0
    with open(prefix + "-symbol.json") as f:
        nodes = json.load(f)["nodes"]
    assert nodes[-1]["op"] == "MultiBoxDetection"
    sym, args, aux = mx.model.load_checkpoint(prefix, 1)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", (1, 3, 64, 64))], for_training=False)
    module.set_params(args, aux)
    bgr = np.random.default_rng(0).uniform(-128, 128, (1, 3, 64, 64)).astype(np.float32)
    module.forward(mx.io.DataBatch([mx.nd.array(bgr[:, ::-1].copy())]), is_train=False)
    output = module.get_outputs()[0].asnumpy()
    assert output.shape == (1, 1510, 6)
    assert_same_detections(mxnet_detections(output), opencv_detections(expected))


def convert_small_ssd(tmp_path):
    """Small SSD (4 classes + background, like the synthetic dataset) converted by the CLI;
    returns (prototxt, caffemodel, output prefix)."""
    net = build_small_ssd(np.random.default_rng(0))
    prototxt, caffemodel = net.save(str(tmp_path / "deploy.prototxt"),
                                    str(tmp_path / "model.caffemodel"))
    prefix = str(tmp_path / "converted" / "ssd_caffe")
    assert convert_model.main([prototxt, caffemodel, prefix, "--no-progress"]) == 0
    return prototxt, caffemodel, prefix


def test_converted_model_takes_rgb_with_project_means_in_detector(tmp_path):
    """The mean/channel mapping: Caffe sees BGR minus (104, 117, 123); the converted model,
    run by the project's Detector (demo.py's engine), RGB minus its default (123, 117, 104)."""
    from detect.detector import Detector
    prototxt, caffemodel, prefix = convert_small_ssd(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ours = Detector(None, prefix, 1, 64).detect_batch([image])[0]
    caffe_input = (image.astype(np.float32) - np.float32(DEFAULT_MEAN_BGR)).transpose(2, 0, 1)
    theirs = opencv_detections(opencv_forward(prototxt, caffemodel, caffe_input[None])[0])
    assert len(theirs) >= 20
    assert_same_detections(mxnet_detections(ours[None]), theirs)


def run_script(script, *args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.join(root, script)] + list(args), cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stdout[-2000:]
    return result.stdout


def test_converted_model_runs_through_evaluate_deploy(tmp_path):
    from dataset import synthetic
    data = synthetic.prepare(str(tmp_path / "synthetic"), num_train=1, num_val=4,
                             data_shape=64, progress=False)
    _, _, prefix = convert_small_ssd(tmp_path)
    output = run_script("evaluate.py", "--deploy", "--prefix", prefix, "--epoch", "1",
                        "--data-shape", "64", "--num-class", str(len(data["class_names"])),
                        "--class-names", ",".join(data["class_names"]),
                        "--rec-path", data["val_rec"], "--cpu", "--batch-size", "2",
                        "--output-dir", str(tmp_path / "evaluation"))
    assert "mAP" in output and "4 images" in output


def test_converted_model_runs_through_demo_deploy(tmp_path):
    import cv2
    _, _, prefix = convert_small_ssd(tmp_path)
    image = str(tmp_path / "image.png")
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    run_script("demo.py", "--deploy", "--prefix", prefix, "--epoch", "1", "--data-shape", "64",
               "--class-names", "circle,square,triangle,cross", "--cpu", "--images", image,
               "--save-dir", str(tmp_path / "demo"), "--no-timer")
    with open(tmp_path / "demo" / "detections.json") as f:
        results = json.load(f)["results"]
    assert len(results) == 1 and results[0]["source"] == image
    assert (results[0]["width"], results[0]["height"]) == (96, 80)


def test_converter_writes_a_model_spec_demo_reads(tmp_path):
    """The converted SSD says what it is: input 64x64, 4 classes, its NMS settings, a saved
    graph to run as it is; demo.py needs only --prefix/--epoch."""
    import cv2
    from symbol import model_io
    _, _, prefix = convert_small_ssd(tmp_path)
    spec = model_io.read_spec(prefix)
    assert (spec['deploy'], spec['network'], spec['data_shape'], spec['num_classes']) == \
        (True, None, [64, 64], 4)
    image = str(tmp_path / "image.png")
    cv2.imwrite(image, np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    run_script("demo.py", "--prefix", prefix, "--epoch", "1", "--cpu", "--images", image,
               "--save-dir", "", "--json", str(tmp_path / "d.json"))
    with open(tmp_path / "d.json") as f:
        assert json.load(f)["model"]["data_shape"] == 64


def test_compare_cli_reports_matching_detections(tmp_path, capsys):
    prototxt, caffemodel, _ = convert_small_ssd(tmp_path)
    assert compare.main([prototxt, caffemodel]) == 0
    assert "max differences: class 0" in capsys.readouterr().out


def test_convert_symbol_cli_prints_the_symbol(tmp_path, capsys):
    net = build_small_ssd(np.random.default_rng(0))
    prototxt, _ = net.save(str(tmp_path / "deploy.prototxt"))
    assert convert_symbol.main([prototxt]) == 0
    printed = mx.sym.load_json(capsys.readouterr().out)
    assert printed.list_outputs() == ["detection_out_output"]
    assert printed.infer_shape(data=(2, 3, 64, 64))[1] == [(2, 1510, 6)]
    assert convert_symbol.main([prototxt, "--output", str(tmp_path / "s.json")]) == 0
    assert mx.sym.load(str(tmp_path / "s.json")).tojson() == printed.tojson()


PRIOR_CASES = {
    "min_max_ratios_step": dict(min_size=4, max_size=9, aspect_ratio=[2, 3], flip=True,
                                clip=False, step=2, variance=VARIANCES),
    "clip_auto_step_offset": dict(min_size=5, aspect_ratio=[2], flip=False, clip=True,
                                  offset=0.3, variance=[0.2]),
    "several_sizes_no_ratios": dict(min_size=[3, 6], max_size=[5, 8], clip=False,
                                    step_h=2, step_w=2, variance=VARIANCES),
}


@pytest.mark.parametrize("name", sorted(PRIOR_CASES))
def test_prior_box_matches_opencv(tmp_path, name):
    net = NetWriter(name)
    net.input("data", (1, 3, 12, 12))
    net.add("Pooling", "feature", ["data"], pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
    net.add("PriorBox", "priors", ["feature", "data"], prior_box_param=PRIOR_CASES[name])
    paths = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    image = np.zeros((1, 3, 12, 12), np.float32)
    expected = opencv_forward(*paths, image, ["priors"])[0][0, 0]
    actual = convert(*paths).forward(data=image)[0]
    assert actual.shape == (1, expected.size // 4, 4)
    assert np.abs(actual.reshape(-1) - expected).max() < TOLERANCE


@pytest.mark.parametrize("prior, message", [
    (dict(min_size=[3, 6], aspect_ratio=[2], variance=VARIANCES),
     "several min_size values combined with aspect ratios"),
    (dict(min_size=3, variance=[0.1, 0.2]), "needs 1 or 4 variance values, got 2"),
    (dict(min_size=6, max_size=4, variance=VARIANCES), "max_size 4 must exceed min_size 6"),
    (dict(min_size=3, img_h=12, img_w=24, variance=VARIANCES), "different aspect ratios"),
])
def test_prior_box_refuses_unsupported_combinations(tmp_path, prior, message):
    net = NetWriter("bad_prior")
    net.input("data", (1, 3, 12, 12))
    net.add("PriorBox", "priors", ["data", "data"], prior_box_param=prior)
    prototxt, _ = net.save(str(tmp_path / "n.prototxt"))
    with pytest.raises(CaffeError, match=r"layer 'priors' \(PriorBox\): .*" + message):
        convert(prototxt)


@pytest.mark.parametrize("change, message", [
    (dict(code_type="CORNER"), "code_type must be CENTER_SIZE"),
    (dict(share_location=False), "share_location: false is not supported"),
    (dict(background_label_id=2), "background_label_id must be 0, got 2"),
    (dict(nms_param=dict(nms_threshold=0.45, eta=0.9)), "adaptive NMS"),
])
def test_detection_output_refuses_unsupported_settings(tmp_path, change, message):
    net = NetWriter("bad_detection")
    net.input("data", (1, 3, 8, 8))
    net.add("Convolution", "loc", ["data"], convolution_param=dict(num_output=4, kernel_size=1))
    net.add("Convolution", "conf", ["data"], convolution_param=dict(num_output=3, kernel_size=1))
    net.add("PriorBox", "priors", ["data", "data"],
            prior_box_param=dict(min_size=2, variance=[0.1]))
    net.add("DetectionOutput", "detection_out", ["loc", "conf", "priors"],
            detection_output_param=dict(DETECTION, num_classes=3, **change))
    prototxt, _ = net.save(str(tmp_path / "n.prototxt"))
    with pytest.raises(CaffeError, match=r"layer 'detection_out' \(DetectionOutput\): " + message):
        convert(prototxt, swap_rgb=False)


@pytest.mark.slow
def test_vgg16_ssd300_deploy_graph_matches_opencv(tmp_path):
    """Published deploy settings (confidence 0.01, top_k 400, keep_top_k 200): compared on the
    detections scoring >= 0.5, where the two runtimes' semantics coincide."""
    net = build_vgg16_ssd300(np.random.default_rng(0))
    model, actual, expected, _ = run_detection(tmp_path, net)
    assert model.symbol.infer_shape(data=(1, 3, 300, 300))[1] == [(1, 8732, 6)]
    theirs = opencv_detections(expected, CONFIDENT)
    assert 20 <= len(theirs) < 200  # all confident ones fit in keep_top_k
    assert_same_detections(mxnet_detections(actual, CONFIDENT), theirs)
