"""Network builders: presets, anchor geometry, released parameter names, legacy graphs,
forward passes, repeatable building and JSON round trips."""
import io
import json
import math
from contextlib import redirect_stdout

import mxnet as mx
import numpy as np
import pytest

from symbol import presets, resnet, symbol_factory
from symbol.common import caffe_ssd_sizes, prediction_head

NUM_CLASSES = 20
ALL_NETWORKS = ("vgg16_reduced", "legacy_vgg16_ssd_300", "legacy_vgg16_ssd_512", "inceptionv3",
                "resnet50", "resnet101", "mobilenet", "mobilenet_0.25", "mobilenet_0.5",
                "mobilenet_0.75")
MOBILENETS = ("mobilenet", "mobilenet_0.25", "mobilenet_0.5", "mobilenet_0.75")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def hw(data_shape):
    return data_shape if isinstance(data_shape, tuple) else (data_shape, data_shape)


def feature_maps(net, data_shape):
    """(height, width) of every feature map, read from the loc heads' output shapes."""
    height, width = hw(data_shape)
    internals = net.get_internals()
    heads = [name for name in internals.list_outputs() if name.endswith("_loc_pred_conv_output")]
    _, shapes, _ = internals.infer_shape(data=(1, 3, height, width))
    by_name = dict(zip(internals.list_outputs(), shapes))
    return [tuple(by_name[name][2:]) for name in heads]


def num_anchors(net, data_shape):
    height, width = hw(data_shape)
    _, out_shapes, _ = net.infer_shape(data=(1, 3, height, width))
    return out_shapes[0][1]


def bound_executor(net, data_shape, label_shape=None, seed=0):
    """CPU executor of ``net`` for a batch of one, parameters initialised like training
    (Xavier; __init__ attributes such as the L2 scale and zero biases honoured)."""
    height, width = hw(data_shape)
    shapes = {"data": (1, 3, height, width)}
    if label_shape is not None:
        shapes["label"] = label_shape
    executor = net.simple_bind(mx.cpu(), grad_req="write" if label_shape else "null", **shapes)
    mx.random.seed(seed)
    attrs = net.attr_dict()
    initializer = mx.init.Xavier(magnitude=2.0)
    for name, array in list(executor.arg_dict.items()) + list(executor.aux_dict.items()):
        if name not in shapes:
            initializer(mx.init.InitDesc(name, attrs.get(name, {})), array)
    return executor


def random_image(data_shape, seed=0):
    height, width = hw(data_shape)
    return np.random.RandomState(seed).uniform(-100, 100, (1, 3, height, width)).astype("f4")


def forward(executor, image, **inputs):
    outputs = executor.forward(is_train=bool(inputs), data=image, **inputs)
    return [out.asnumpy() for out in outputs]


def check_detections(det, expected_anchors, num_classes):
    assert det.shape == (1, expected_anchors, 6)
    cls, score, boxes = det[0, :, 0], det[0, :, 1], det[0, :, 2:]
    kept = cls >= 0
    assert kept.any(), "random weights give scores ~1/(C+1) > 0.01: something must be kept"
    assert np.all(cls[kept] == np.round(cls[kept])) and cls.max() < num_classes
    assert np.all(cls[~kept] == -1)
    assert np.all((score[kept] >= 0.01) & (score[kept] <= 1))
    assert np.all((boxes[kept] >= 0) & (boxes[kept] <= 1))  # clipped
    assert np.all(np.diff(score[kept]) <= 1e-7), "kept rows must be sorted by score"


# ---------------------------------------------------------------------------------------------
# anchor sizes and presets
# ---------------------------------------------------------------------------------------------
def test_caffe_ssd_sizes_match_the_published_values():
    six = [[0.1, 0.1414], [0.2, 0.2720], [0.37, 0.4470], [0.54, 0.6192], [0.71, 0.7904],
           [0.88, 0.9612]]
    seven = [[0.07, 0.1025], [0.15, 0.2121], [0.3, 0.3674], [0.45, 0.5196], [0.6, 0.6708],
             [0.75, 0.8216], [0.9, 0.9721]]
    np.testing.assert_allclose(caffe_ssd_sizes(0.2, 0.9, 6), six, atol=5e-5)
    np.testing.assert_allclose(caffe_ssd_sizes(0.15, 0.9, 7), seven, atol=5e-5)
    with pytest.raises(ValueError, match="at least 3 layers"):
        caffe_ssd_sizes(0.2, 0.9, 2)


def test_get_config_resolves_vgg300_preset():
    config = symbol_factory.get_config("vgg16_reduced", 300)
    assert config["data_shape"] == (300, 300)
    assert config["from_layers"] == ["relu4_3", "relu7", "", "", "", ""]
    assert config["num_filters"] == [512, -1, 512, 256, 256, 256]
    assert config["normalizations"] == [20, -1, -1, -1, -1, -1]
    np.testing.assert_allclose(config["steps"], np.array([8, 16, 32, 64, 100, 300]) / 300.0)
    np.testing.assert_allclose(config["sizes"], caffe_ssd_sizes(0.2, 0.9, 6))
    assert config["ratios"][1] == [1, 2, 0.5, 3, 1 / 3.0]


def test_get_config_uses_automatic_steps_off_the_native_shape():
    assert symbol_factory.get_config("vgg16_reduced", 320)["steps"] == []
    assert symbol_factory.get_config("vgg16_reduced", 608)["from_layers"][-1] == ""
    assert len(symbol_factory.get_config("vgg16_reduced", 608)["from_layers"]) == 7


def test_mobilenet_taps_the_stride_8_stage_below_448_pixels():
    small = symbol_factory.get_config("mobilenet_0.25", 447)
    assert small["from_layers"] == ["conv_6_relu", "conv_12_relu", "conv_14_relu", "", ""]
    assert small["sizes"] == caffe_ssd_sizes(0.2, 0.9, 5)
    large = symbol_factory.get_config("mobilenet_0.25", (448, 608))
    assert large["from_layers"][:2] == ["conv_12_relu", "conv_14_relu"]
    assert large["sizes"] == caffe_ssd_sizes(0.15, 0.9, 7)


@pytest.mark.parametrize("num_filter", [20, 24])
def test_prediction_head_equals_a_plain_convolution(num_filter):
    """Heads run with zero filters padded to a multiple of 8 (faster oneDNN kernels): same
    parameters, outputs and gradients as the plain 3x3 convolution."""
    rng = np.random.RandomState(1)
    data = mx.nd.array(rng.uniform(-1, 1, (2, 6, 5, 7)))
    weight = mx.nd.array(rng.uniform(-1, 1, (num_filter, 6, 3, 3)))
    bias = mx.nd.array(rng.uniform(-1, 1, (num_filter,)))
    head = prediction_head(mx.sym.Variable("data"), "h", num_filter, 6)
    assert head.list_arguments() == ["data", "h_conv_weight", "h_conv_bias"]
    grads = {"h_conv_weight": mx.nd.zeros(weight.shape), "h_conv_bias": mx.nd.zeros(bias.shape)}
    executor = head.bind(mx.cpu(), {"data": data, "h_conv_weight": weight, "h_conv_bias": bias},
                         args_grad=grads, grad_req={"data": "null", "h_conv_weight": "write",
                                                    "h_conv_bias": "write"})
    out = executor.forward(is_train=True)[0]
    head_grad = mx.nd.array(rng.uniform(-1, 1, out.shape))
    executor.backward(head_grad)

    plain = mx.nd.Convolution(data, weight, bias, kernel=(3, 3), pad=(1, 1),
                              num_filter=num_filter)
    expected = plain.transpose((0, 2, 3, 1)).reshape((2, -1))
    np.testing.assert_allclose(out.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)
    nchw_grad = head_grad.reshape((2, 5, 7, num_filter)).transpose((0, 3, 1, 2))
    bias_grad = nchw_grad.sum(axis=(0, 2, 3))
    np.testing.assert_allclose(grads["h_conv_bias"].asnumpy(), bias_grad.asnumpy(), rtol=1e-4)
    # d(out)/d(weight): correlation of the padded input with the output gradient
    padded = np.pad(data.asnumpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    weight_grad = np.einsum("nchwij,nohw->ocij", np.lib.stride_tricks.sliding_window_view(
        padded, (3, 3), axis=(2, 3)), nchw_grad.asnumpy())
    np.testing.assert_allclose(grads["h_conv_weight"].asnumpy(), weight_grad, rtol=1e-4,
                               atol=1e-4)


def test_thin_mobilenet_thins_its_extra_layers():
    config = symbol_factory.get_config("mobilenet_0.25", 512)
    assert config["backbone_kwargs"] == {"multiplier": 0.25}
    assert config["num_filters"] == [-1, -1, 128, 64, 64, 64, 64]
    assert config["min_filter"] == 32


def test_get_config_overrides_and_rejects_unknown_fields():
    config = symbol_factory.get_config("resnet50", 512, ratios=[1, 2, 0.5], normalizations=-1)
    assert config["ratios"] == [[1, 2, 0.5]] * 6
    assert config["normalizations"] == [-1] * 6
    with pytest.raises(TypeError, match="unknown SSD config field.*num_fliters"):
        symbol_factory.get_config("resnet50", 512, num_fliters=[1])


def test_unknown_network_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        symbol_factory.get_symbol("vgg19", 300, NUM_CLASSES)
    message = str(error.value)
    assert "'vgg19'" in message
    for name in ALL_NETWORKS:
        assert name in message


@pytest.mark.parametrize("data_shape", [0, (300, 300, 3)])
def test_bad_data_shape_is_rejected(data_shape):
    with pytest.raises(ValueError, match="data_shape|height, width"):
        symbol_factory.get_config("mobilenet", data_shape)


def test_bad_builder_inputs_name_the_problem():
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        symbol_factory.get_symbol("mobilenet_0.25", 256, 0)
    with pytest.raises(ValueError, match="has no layer 'conv_99_relu'"):
        symbol_factory.get_symbol("mobilenet_0.25", 256, 3,
                                  from_layers=["conv_99_relu", "conv_12_relu", "conv_14_relu",
                                               "", ""])
    with pytest.raises(ValueError, match="same length"):
        symbol_factory.get_symbol("mobilenet_0.25", 256, 3, strides=[-1, -1, 2])
    with pytest.raises(ValueError, match="ratios has 2 entries for 5 feature layers"):
        symbol_factory.get_symbol("mobilenet_0.25", 256, 3, ratios=[[1], [1, 2]])
    with pytest.raises(ValueError, match="width multiplier"):
        symbol_factory.get_symbol("mobilenet_0.25", 256, 3, backbone_kwargs={"multiplier": 0.3})


def test_resnet_taps_are_the_ends_of_stages_3_and_4():
    assert resnet.stage_end_names(50)[2:] == ["_plus12", "_plus15"]
    assert resnet.stage_end_names(101)[2:] == ["_plus29", "_plus32"]
    assert list(presets.RESNET50["from_layers"][:2]) == resnet.stage_end_names(50)[2:]
    assert list(presets.RESNET101["from_layers"][:2]) == resnet.stage_end_names(101)[2:]
    internals = resnet.get_symbol(50).get_internals()
    _, shapes, _ = internals["_plus12_output"].infer_shape(data=(1, 3, 512, 512))
    assert shapes[0] == (1, 1024, 32, 32)


# ---------------------------------------------------------------------------------------------
# feature maps and anchor counts
# ---------------------------------------------------------------------------------------------
MAPS_300_VGG = [38, 19, 10, 5, 3, 1]
MAPS_512_VGG = [64, 32, 16, 8, 4, 2, 1]
MAPS_300_RESNET = [19, 10, 5, 3, 2, 1]
MAPS_512_RESNET = [32, 16, 8, 4, 2, 1]
MAPS_300_MOBILENET = [38, 19, 10, 5, 3]
MAPS_512_MOBILENET = [32, 16, 8, 4, 2, 1, 1]
GEOMETRY = [  # network, data shape, square feature map sides, anchors
    ("vgg16_reduced", 300, MAPS_300_VGG, 8732),
    ("vgg16_reduced", 512, MAPS_512_VGG, 24564),
    ("legacy_vgg16_ssd_300", 300, MAPS_300_VGG, 8732),
    ("legacy_vgg16_ssd_300", 512, [64, 32, 16, 8, 6, 4], 24656),
    ("legacy_vgg16_ssd_512", 300, [38, 19, 10, 5, 3, 2, 1], 8766),
    ("legacy_vgg16_ssd_512", 512, MAPS_512_VGG, 24564),
    ("inceptionv3", 300, [35, 17, 8, 4, 2, 1], 7134),
    ("inceptionv3", 512, [30, 14, 7, 4, 2, 1], 5186),
    ("resnet50", 300, MAPS_300_RESNET, 2268),
    ("resnet50", 512, MAPS_512_RESNET, 6132),
    ("resnet101", 300, MAPS_300_RESNET, 2268),
    ("resnet101", 512, MAPS_512_RESNET, 6132),
] + [(name, 300, MAPS_300_MOBILENET, 8678) for name in MOBILENETS] \
  + [(name, 192, [24, 12, 6, 3, 2], 3436) for name in MOBILENETS] \
  + [(name, 447, [56, 28, 14, 7, 4], 18684) for name in MOBILENETS] \
  + [(name, 512, MAPS_512_MOBILENET, 6144) for name in MOBILENETS]


@pytest.mark.parametrize("network, data_shape, sides, anchors", GEOMETRY)
def test_feature_maps_and_anchor_counts(network, data_shape, sides, anchors):
    net = symbol_factory.get_symbol(network, data_shape, NUM_CLASSES)
    assert feature_maps(net, data_shape) == [(side, side) for side in sides]
    assert num_anchors(net, data_shape) == anchors


@pytest.mark.parametrize("network, data_shape, maps, anchors", [
    # 256: the last unpadded 3x3 layer gets a 2x2 map and is padded to keep one
    ("vgg16_reduced", 256, [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (2, 2)], 6144),
    ("vgg16_reduced", 320, [(40, 40), (20, 20), (10, 10), (5, 5), (3, 3), (1, 1)], 9590),
    ("vgg16_reduced", 608, [(76, 76), (38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (2, 2)],
     34736),
    ("mobilenet_0.25", (256, 320), [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)], 7624),
    ("mobilenet_0.25", (448, 608),
     [(28, 38), (14, 19), (7, 10), (4, 5), (2, 3), (1, 2), (1, 1)], 6440),
    ("resnet50", 256, [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1), (1, 1)], 1536),
])
def test_other_data_shapes_work(network, data_shape, maps, anchors):
    net = symbol_factory.get_symbol(network, data_shape, NUM_CLASSES)
    assert feature_maps(net, data_shape) == maps
    assert num_anchors(net, data_shape) == anchors


def test_vgg300_anchor_geometry():
    """Anchor boxes follow the preset's pixel steps (8 ... 300) and Caffe sizes."""
    net = symbol_factory.get_symbol("vgg16_reduced", 300, NUM_CLASSES)
    anchors_sym = net.get_internals()["multibox_anchors_output"]
    executor = anchors_sym.simple_bind(mx.cpu(), data=(1, 3, 300, 300), grad_req="null")
    anchors = executor.forward()[0].asnumpy()[0]
    assert anchors.shape == (8732, 4)

    def box(cx, cy, w, h):
        return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]

    c0 = 4 / 300.0  # first cell centre of the 38x38 map (step 8 px), not 1/76
    np.testing.assert_allclose(anchors[0], box(c0, c0, 0.1, 0.1), atol=1e-6)
    s1 = math.sqrt(0.1 * 0.2)
    np.testing.assert_allclose(anchors[1], box(c0, c0, s1, s1), atol=1e-6)
    r2 = math.sqrt(2)
    np.testing.assert_allclose(anchors[2], box(c0, c0, 0.1 * r2, 0.1 / r2), atol=1e-6)
    # first anchor of the 5x5 map (step 64 px): after 38^2*4 + 19^2*6 + 10^2*6 anchors
    c3 = 32 / 300.0
    np.testing.assert_allclose(anchors[38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6],
                               box(c3, c3, 0.54, 0.54), atol=1e-6)
    # last anchor: 1x1 map centred in the image, ratio 1/2 at size 0.88
    np.testing.assert_allclose(anchors[-1], box(0.5, 0.5, 0.88 / r2, 0.88 * r2), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# released parameter names
# ---------------------------------------------------------------------------------------------
def conv(name, out_ch, in_ch, k):
    return [(name + "_weight", (out_ch, in_ch, k, k)), (name + "_bias", (out_ch,))]


def head(source, filters, in_ch):
    return conv(source + "_pred_conv", filters, in_ch, 3)


MF = "multi_feat_%d_conv_"
# list_arguments() of the released vgg16_reduced 300 training symbol, 20 classes, in order.
VGG300_TRAIN_ARGUMENTS = (
    [("relu4_3_scale", (1, 512, 1, 1)), ("data", (1, 3, 300, 300))]
    + conv("conv1_1", 64, 3, 3) + conv("conv1_2", 64, 64, 3)
    + conv("conv2_1", 128, 64, 3) + conv("conv2_2", 128, 128, 3)
    + conv("conv3_1", 256, 128, 3) + conv("conv3_2", 256, 256, 3) + conv("conv3_3", 256, 256, 3)
    + conv("conv4_1", 512, 256, 3) + conv("conv4_2", 512, 512, 3) + conv("conv4_3", 512, 512, 3)
    + head("relu4_3_cls", 84, 512)
    + conv("conv5_1", 512, 512, 3) + conv("conv5_2", 512, 512, 3) + conv("conv5_3", 512, 512, 3)
    + conv("fc6", 1024, 512, 3) + conv("fc7", 1024, 1024, 1)
    + head("relu7_cls", 126, 1024)
    + conv(MF % 2 + "1x1_conv", 256, 1024, 1) + conv(MF % 2 + "3x3_conv", 512, 256, 3)
    + head(MF % 2 + "3x3_relu_cls", 126, 512)
    + conv(MF % 3 + "1x1_conv", 128, 512, 1) + conv(MF % 3 + "3x3_conv", 256, 128, 3)
    + head(MF % 3 + "3x3_relu_cls", 126, 256)
    + conv(MF % 4 + "1x1_conv", 128, 256, 1) + conv(MF % 4 + "3x3_conv", 256, 128, 3)
    + head(MF % 4 + "3x3_relu_cls", 84, 256)
    + conv(MF % 5 + "1x1_conv", 128, 256, 1) + conv(MF % 5 + "3x3_conv", 256, 128, 3)
    + head(MF % 5 + "3x3_relu_cls", 84, 256)
    + [("label", (1, 3, 6))]
    + head("relu4_3_loc", 16, 512) + head("relu7_loc", 24, 1024)
    + head(MF % 2 + "3x3_relu_loc", 24, 512) + head(MF % 3 + "3x3_relu_loc", 24, 256)
    + head(MF % 4 + "3x3_relu_loc", 16, 256) + head(MF % 5 + "3x3_relu_loc", 16, 256)
)


def arguments_with_shapes(net, **shapes):
    arg_shapes, _, aux_shapes = net.infer_shape(**shapes)
    assert aux_shapes == []
    return list(zip(net.list_arguments(), arg_shapes))


def test_vgg300_training_symbol_has_the_released_parameters():
    net = symbol_factory.get_symbol_train("vgg16_reduced", 300, NUM_CLASSES)
    assert len(VGG300_TRAIN_ARGUMENTS) == 73
    assert arguments_with_shapes(net, data=(1, 3, 300, 300), label=(1, 3, 6)) \
        == VGG300_TRAIN_ARGUMENTS
    assert net.list_outputs() == ["cls_prob_output", "loc_loss_output", "cls_label_output",
                                  "det_out_output"]
    _, out_shapes, _ = net.infer_shape(data=(2, 3, 300, 300), label=(2, 3, 6))
    assert out_shapes == [(2, 21, 8732), (2, 34928), (2, 8732), (2, 8732, 6)]


def test_vgg300_test_symbol_has_the_released_parameters():
    net = symbol_factory.get_symbol("vgg16_reduced", 300, NUM_CLASSES)
    expected = [entry for entry in VGG300_TRAIN_ARGUMENTS if entry[0] != "label"]
    assert arguments_with_shapes(net, data=(1, 3, 300, 300)) == expected
    assert net.list_outputs() == ["detection_output"]


def test_learning_rate_and_decay_attributes():
    attrs = symbol_factory.get_symbol_train("vgg16_reduced", 300, NUM_CLASSES).attr_dict()
    scale = attrs["relu4_3_scale"]
    assert float(scale["__wd_mult__"]) == 0.1
    assert json.loads(scale["__init__"]) == ["constant", {"value": 20}]
    for bias in ("multi_feat_2_conv_1x1_conv_bias", "multi_feat_5_conv_3x3_conv_bias",
                 "relu4_3_loc_pred_conv_bias", "relu7_cls_pred_conv_bias"):
        assert float(attrs[bias]["__lr_mult__"]) == 2.0
        assert json.loads(attrs[bias]["__init__"]) == ["constant", {"value": 0.0}]
    # backbone biases keep the default learning rate
    assert "__lr_mult__" not in attrs.get("conv1_1_bias", {})


def test_training_symbol_settings():
    net = symbol_factory.get_symbol_train("mobilenet_0.25", 256, 3, minimum_negative_samples=7)
    attrs = net.attr_dict()
    target = attrs["multibox_target"]
    assert float(target["overlap_threshold"]) == 0.5
    assert int(target["ignore_label"]) == -1
    assert float(target["negative_mining_ratio"]) == 3
    assert float(target["negative_mining_thresh"]) == 0.5
    assert int(target["minimum_negative_samples"]) == 7
    assert target["variances"].replace(" ", "") == "(0.1,0.1,0.2,0.2)"
    softmax = attrs["cls_prob"]
    assert softmax["multi_output"] == "True" and softmax["use_ignore"] == "True"
    assert softmax["normalization"] == "valid" and int(softmax["ignore_label"]) == -1
    assert attrs["loc_loss"]["normalization"] == "valid"
    assert float(attrs["loc_loss_"]["scalar"]) == 1.0
    assert float(attrs["cls_label"]["grad_scale"]) == 0
    assert float(attrs["det_out"]["grad_scale"]) == 0
    # one NMS default for training and inference (config/defaults.py)
    assert float(attrs["detection"]["nms_threshold"]) == 0.45


def test_test_symbol_detection_settings():
    attrs = symbol_factory.get_symbol("mobilenet_0.25", 256, 3).attr_dict()["detection"]
    assert float(attrs["nms_threshold"]) == 0.45 and attrs["force_suppress"] == "False"
    assert int(attrs["nms_topk"]) == 400
    attrs = symbol_factory.get_symbol("mobilenet_0.25", 256, 3, nms_thresh=0.3,
                                      force_suppress=True, nms_topk=50).attr_dict()["detection"]
    assert float(attrs["nms_threshold"]) == 0.3 and attrs["force_suppress"] == "True"
    assert int(attrs["nms_topk"]) == 50


# ---------------------------------------------------------------------------------------------
# legacy graphs
# ---------------------------------------------------------------------------------------------
def legacy_extras(last_kernel):
    return (conv("conv8_1", 256, 1024, 1) + conv("conv8_2", 512, 256, 3)
            + conv("conv9_1", 128, 512, 1) + conv("conv9_2", 256, 128, 3)
            + conv("conv10_1", 128, 256, 1) + conv("conv10_2", 256, 128, 3)
            + conv("conv11_1", 128, 256, 1) + conv("conv11_2", 256, 128, last_kernel))


@pytest.mark.parametrize("network, data_shape, expected, heads", [
    ("legacy_vgg16_ssd_300", 300, legacy_extras(3),
     ["relu4_3", "relu7", "relu8_2", "relu9_2", "relu10_2", "relu11_2"]),
    ("legacy_vgg16_ssd_512", 512, legacy_extras(3) + conv("conv12_1", 128, 256, 1)
     + conv("conv12_2", 256, 128, 4),
     ["relu4_3", "relu7", "relu8_2", "relu9_2", "relu10_2", "relu11_2", "relu12_2"]),
])
def test_legacy_graphs_use_the_old_names(network, data_shape, expected, heads):
    net = symbol_factory.get_symbol_train(network, data_shape, NUM_CLASSES)
    params = dict(arguments_with_shapes(net, data=(1, 3, data_shape, data_shape),
                                        label=(1, 3, 6)))
    for name, shape in expected + conv("conv6", 1024, 512, 3) + conv("conv7", 1024, 1024, 1):
        assert params[name] == shape, name
    assert params["relu4_3_scale"] == (1, 512, 1, 1)
    assert not [name for name in params if name.startswith(("fc6", "fc7", "multi_feat"))]
    loc_heads = [n[:-len("_loc_pred_conv_weight")] for n in params
                 if n.endswith("_loc_pred_conv_weight")]
    assert loc_heads == heads
    assert params["relu8_2_loc_pred_conv_weight"] == (24, 512, 3, 3)
    assert params["relu8_2_cls_pred_conv_weight"] == (126, 512, 3, 3)
    attrs = net.attr_dict()
    assert float(attrs["conv8_1_bias"]["__lr_mult__"]) == 2.0


def test_legacy300_is_vgg300_renamed():
    """With the same weights (renamed) both graphs give the same predictions."""
    new = symbol_factory.get_symbol("vgg16_reduced", 300, NUM_CLASSES).get_internals()
    old = symbol_factory.get_symbol("legacy_vgg16_ssd_300", 300, NUM_CLASSES).get_internals()
    outputs = ["multibox_loc_pred_output", "multibox_cls_pred_output"]
    new_exec = bound_executor(mx.sym.Group([new[name] for name in outputs]), 300)
    old_exec = bound_executor(mx.sym.Group([old[name] for name in outputs]), 300, seed=1)
    renames = [("fc6", "conv6"), ("fc7", "conv7")]
    for k in range(2, 6):
        renames += [(MF % k + "1x1_conv", "conv%d_1" % (k + 6)),
                    (MF % k + "3x3_conv", "conv%d_2" % (k + 6)),
                    (MF % k + "3x3_relu", "relu%d_2" % (k + 6))]

    def legacy_name(name):
        for new_prefix, old_prefix in renames:
            if name.startswith(new_prefix + "_"):
                return old_prefix + name[len(new_prefix):]
        return name

    assert len(new_exec.arg_dict) == len(old_exec.arg_dict)
    for name, array in new_exec.arg_dict.items():
        array.copyto(old_exec.arg_dict[legacy_name(name)])
    image = random_image(300)
    for new_out, old_out in zip(forward(new_exec, image), forward(old_exec, image)):
        np.testing.assert_allclose(old_out, new_out, rtol=1e-4, atol=1e-5)


def test_legacy512_anchor_sizes_are_the_released_ones():
    sizes = symbol_factory.get_config("legacy_vgg16_ssd_512", 512)["sizes"]
    assert sizes[0] == [0.07, 0.1025] and sizes[-1] == [0.9, 0.9721]


# ---------------------------------------------------------------------------------------------
# forward passes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("network, data_shape, anchors", [
    ("legacy_vgg16_ssd_512", 512, 24564),
    ("inceptionv3", 512, 5186),
    ("resnet50", 512, 6132),
    ("resnet101", 512, 6132),
] + [(name, 512, 6144) for name in MOBILENETS])
def test_test_symbol_forward(network, data_shape, anchors):
    net = symbol_factory.get_symbol(network, data_shape, NUM_CLASSES)
    det, = forward(bound_executor(net, data_shape), random_image(data_shape))
    check_detections(det, anchors, NUM_CLASSES)


def test_vgg300_forward():
    net = symbol_factory.get_symbol("vgg16_reduced", 300, NUM_CLASSES)
    det, = forward(bound_executor(net, 300), random_image(300))
    check_detections(det, 8732, NUM_CLASSES)


def test_training_symbol_forward_backward():
    """One box of class 1: its best anchors get target 2 (background is 0), three mined
    negatives per positive, the rest ignored; gradients reach the heads."""
    data_shape, num_classes = 256, 3
    net = symbol_factory.get_symbol_train("mobilenet_0.25", data_shape, num_classes)
    label = np.full((1, 2, 6), -1, dtype="f4")
    label[0, 0] = [1, 0.3, 0.3, 0.7, 0.6, 0]
    executor = bound_executor(net, data_shape, label_shape=label.shape)
    cls_prob, loc_loss, cls_label, det = forward(executor, random_image(data_shape),
                                                 label=label)
    anchors = 32 * 32 * 4 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 4 + 2 * 2 * 4
    assert cls_prob.shape == (1, num_classes + 1, anchors)
    np.testing.assert_allclose(cls_prob.sum(axis=1), 1, rtol=1e-5)
    positives = int((cls_label == 2).sum())
    assert positives >= 1
    assert set(np.unique(cls_label)) <= {-1, 0, 2}
    assert int((cls_label == 0).sum()) == 3 * positives
    assert loc_loss.shape == (1, 4 * anchors) and np.all(loc_loss >= 0)
    assert np.count_nonzero(loc_loss) <= 4 * positives
    assert det.shape == (1, anchors, 6)
    executor.backward()
    head_grad = executor.grad_dict["conv_12_relu_cls_pred_conv_weight"].asnumpy()
    assert np.abs(head_grad).sum() > 0
    assert np.abs(executor.grad_dict["conv_1_conv2d_weight"].asnumpy()).sum() > 0


# ---------------------------------------------------------------------------------------------
# repeatable building and serialisation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_building_twice_gives_the_same_graph(network):
    first = symbol_factory.get_symbol_train(network, 300, NUM_CLASSES).tojson()
    # anonymous ops in between moved the name counters the original's _plusN depended on
    _ = mx.sym.Variable("a") + mx.sym.Variable("b")
    second = symbol_factory.get_symbol_train(network, 300, NUM_CLASSES)
    assert second.tojson() == first
    _, out_shapes, _ = second.infer_shape(data=(1, 3, 300, 300), label=(1, 2, 6))
    assert out_shapes[0][0] == 1


@pytest.mark.parametrize("train", [False, True])
def test_json_round_trip(tmp_path, train):
    build = symbol_factory.get_symbol_train if train else symbol_factory.get_symbol
    net = build("mobilenet_0.25", 256, 3)
    path = str(tmp_path / "net-symbol.json")
    net.save(path)
    loaded = mx.sym.load(path)
    assert loaded.tojson() == net.tojson()
    assert loaded.list_arguments() == net.list_arguments()
    assert loaded.list_outputs() == net.list_outputs()
    if not train:
        original = bound_executor(net, 256)
        reloaded = bound_executor(loaded, 256, seed=5)
        for name, array in original.arg_dict.items():
            array.copyto(reloaded.arg_dict[name])
        for name, array in original.aux_dict.items():
            array.copyto(reloaded.aux_dict[name])
        image = random_image(256, seed=3)
        np.testing.assert_array_equal(forward(reloaded, image)[0], forward(original, image)[0])


# ---------------------------------------------------------------------------------------------
# tools/visualize_net.py
# ---------------------------------------------------------------------------------------------
def test_visualize_net_prints_a_table_without_graphviz(monkeypatch):
    from tools import visualize_net
    monkeypatch.setattr(visualize_net, "graphviz_available", lambda: False)
    out = io.StringIO()
    with redirect_stdout(out):
        result = visualize_net.main(["--network", "mobilenet_0.25", "--data-shape", "256,320",
                                     "--num-classes", "3"])
    text = out.getvalue()
    assert result is None
    assert "graphviz" in text and "detection(MultiBoxDetection)" in text
    assert "7624x6" in text  # output shape column of the detection layer


def test_visualize_net_graph_and_arguments():
    from tools import visualize_net
    args = visualize_net.parse_args(["--network", "mobilenet_0.25", "--data-shape", "128",
                                     "--train"])
    assert args.train is True and args.data_shape == 128
    net, shapes, title = visualize_net.build(args)
    assert title == "ssd_mobilenet_0.25_128x128_train" and shapes["label"] == (1, 1, 6)
    graph = visualize_net.make_graph(net, shapes, title, "pdf")
    assert "multibox_target" in graph.source and "det_out" in graph.source
    with pytest.raises(SystemExit):
        visualize_net.parse_args(["--data-shape", "3,4,5"])
