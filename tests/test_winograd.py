"""WinogradConv3x3 (operator/winograd_conv.cc) against MXNet's own Convolution (oneDNN) on
every 3x3 layer shape of the SSD networks, and the graph pass symbol/winograd.py: names kept,
the right nodes converted, the shipped model's detections unchanged, bad input refused."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from symbol.symbol_factory import get_symbol
from symbol.winograd import ENV_SWITCH, OP_NAME, use_winograd, winograd_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = (("vgg16_reduced", 300), ("resnet50", 512), ("resnet101", 512), ("inceptionv3", 512))
MAX_SIDE = 40   # bigger feature maps are cut to 37 x 39 (partial tiles both ways)
REL_TOL = 1e-4  # of the largest |output| of the layer


def network_layer_shapes():
    """One (c_in, c_out, pad, in_h, in_w) per distinct (c_in, c_out, pad) among the 3x3
    stride-1 convolutions of the networks, with the spatial size the network gives it."""
    shapes = {}
    for network, side in NETWORKS:
        for layer in winograd_layers(get_symbol(network, side, 20), {"data": (1, 3, side, side)}):
            in_h, in_w = (layer.out_height + 2 - 2 * layer.pad[0],
                          layer.out_width + 2 - 2 * layer.pad[1])
            if in_h > MAX_SIDE:
                in_h, in_w = 37, 39
            shapes.setdefault((layer.in_channels, layer.out_channels, layer.pad), (in_h, in_w))
    return [key + value for key, value in sorted(shapes.items())]


LAYER_SHAPES = network_layer_shapes()


def random_conv(c_in, c_out, in_h, in_w, batch=1, seed=0):
    """ReLU-like activations and He-scaled weights: outputs O(1), like the networks'."""
    rng = np.random.RandomState(seed)
    data = rng.uniform(0, 1, (batch, c_in, in_h, in_w)).astype(np.float32)
    weight = (rng.randn(c_out, c_in, 3, 3) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, c_out).astype(np.float32)
    return mx.nd.array(data), mx.nd.array(weight), mx.nd.array(bias)


def reference(data, weight, bias, pad, relu=False):
    out = mx.nd.Convolution(data, weight, bias, kernel=(3, 3), pad=pad,
                            num_filter=weight.shape[0], no_bias=bias is None)
    return (mx.nd.relu(out) if relu else out).asnumpy()


def winograd(data, weight, bias, pad, relu=False):
    inputs = (data, weight) if bias is None else (data, weight, bias)
    return mx.nd.WinogradConv3x3(*inputs, num_filter=weight.shape[0], pad=pad, relu=relu,
                                 no_bias=bias is None).asnumpy()


def assert_close(ours, ref):
    assert ours.shape == ref.shape
    error = np.abs(ours - ref).max() / np.abs(ref).max()
    assert error <= REL_TOL, "max |diff| %.2e of max |output|" % error


def test_every_network_shape_is_covered():
    # the VGG16 conv layers, the ResNet stages, Inception's unpadded 3x3s and every head
    keys = {shape[:3] for shape in LAYER_SHAPES}
    assert {(64, 64, (1, 1)), (512, 512, (1, 1)), (2048, 126, (1, 1)), (32, 32, (0, 0)),
            (80, 192, (0, 0)), (128, 256, (0, 0)), (1024, 24, (1, 1))} <= keys
    assert len(LAYER_SHAPES) >= 30  # 33 at the time of writing


@pytest.mark.parametrize("c_in, c_out, pad, in_h, in_w", LAYER_SHAPES,
                         ids=["%d-%d-p%d-%dx%d" % (s[0], s[1], s[2][0], s[3], s[4])
                              for s in LAYER_SHAPES])
def test_matches_mxnet_convolution_on_network_layer(c_in, c_out, pad, in_h, in_w):
    data, weight, bias = random_conv(c_in, c_out, in_h, in_w)
    assert_close(winograd(data, weight, bias, pad), reference(data, weight, bias, pad))


@pytest.mark.parametrize("batch, c_in, c_out, pad, in_h, in_w", [
    (2, 5, 7, (1, 1), 7, 9),      # batches share tile vectors; 1-3 pixel partial tiles
    (3, 16, 13, (0, 0), 3, 3),    # a single 1x1 output per image
    (1, 8, 6, (2, 2), 1, 1),      # the padding wider than the image
    (1, 9, 10, (0, 1), 11, 6),    # unequal pads
    (2, 33, 50, (1, 1), 21, 22),  # more tiles than one vector, odd channel counts
    (2, 16, 24, (1, 1), 61, 67),  # enough blocks of tiles for a thread each
])
def test_matches_mxnet_convolution_at_borders_and_batches(batch, c_in, c_out, pad, in_h, in_w):
    data, weight, bias = random_conv(c_in, c_out, in_h, in_w, batch)
    assert_close(winograd(data, weight, bias, pad), reference(data, weight, bias, pad))


def test_fused_relu_and_no_bias():
    data, weight, bias = random_conv(64, 96, 23, 19)
    relu = winograd(data, weight, bias, (1, 1), relu=True)
    assert (relu == 0).mean() > 0.2  # the clamp really cut
    assert_close(relu, reference(data, weight, bias, (1, 1), relu=True))
    assert_close(winograd(data, weight, None, (1, 1), relu=True),
                 reference(data, weight, None, (1, 1), relu=True))


@pytest.mark.parametrize("switch", ["MXSSD_WINOGRAD_AVX2", "MXSSD_WINOGRAD_PORTABLE"])
def test_avx2_and_portable_kernels_match(switch):
    """The kernels for CPUs without AVX-512 (AVX2+FMA) or without AVX2 (portable), forced by
    their switches, give the same results as the ones this CPU picks."""
    script = ("import sys; sys.path.insert(0, %r); import numpy as np, test_winograd as t\n"
              "for shape in ((2, 5, 7, (1, 1), 7, 9), (1, 64, 40, (0, 0), 18, 13),\n"
              "              (1, 512, 30, (1, 1), 37, 39)):\n"
              "    d, w, b = t.random_conv(*shape[1:3], *shape[4:], batch=shape[0])\n"
              "    t.assert_close(t.winograd(d, w, b, shape[3], True),\n"
              "                   t.reference(d, w, b, shape[3], True))\n"
              "print('kernels ok')\n" % os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, **{switch: "1"})
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0 and "kernels ok" in proc.stdout, proc.stdout[-2000:]


def bound(sym, data_shape, params):
    exe = sym.simple_bind(mx.cpu(), grad_req="null", data=data_shape)
    exe.copy_params_from(params, allow_extra_params=True)
    return exe


def test_weights_written_after_binding_are_used():
    """The transformed weights are cached per executor: writing the weight array (in place,
    as set_params / copy_params_from do) must be seen by the next forward."""
    data, weight, bias = random_conv(32, 24, 12, 12)
    net = mx.sym.WinogradConv3x3(mx.sym.var("data"), mx.sym.var("w"), mx.sym.var("b"),
                                 num_filter=24, pad=(1, 1))
    exe = bound(net, data.shape, {"w": weight, "b": bias})
    exe.arg_dict["data"][:] = data
    assert_close(exe.forward(is_train=False)[0].asnumpy(), reference(data, weight, bias, (1, 1)))
    new_weight = random_conv(32, 24, 12, 12, seed=1)[1]
    exe.arg_dict["w"][:] = new_weight
    assert_close(exe.forward(is_train=False)[0].asnumpy(),
                 reference(data, new_weight, bias, (1, 1)))


@pytest.mark.parametrize("call, message", [
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((4, 5, 5)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(2), num_filter=2), "must be 4-D"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((2, 4, 5, 5)),
                                   mx.nd.ones(2), num_filter=2), r"\(2,4,3,3\)"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(3), num_filter=2), "'bias' must have shape"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 1, 1)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(2), num_filter=2, pad=0), "smaller than"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5), dtype="float64"),
                                   mx.nd.ones((2, 4, 3, 3), dtype="float64"),
                                   mx.nd.ones(2, dtype="float64"), num_filter=2), "float32"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(2), num_filter=2, stride=2), "unknown argument"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(2), num_filter=2, pad="(1, x)"), "'pad'"),
    (lambda: mx.nd.WinogradConv3x3(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((2, 4, 3, 3)),
                                   mx.nd.ones(2)), "'num_filter' is required"),
])
def test_bad_input_raises_mxnet_error(call, message):
    with pytest.raises(mx.base.MXNetError, match=message):
        call()
        mx.nd.waitall()


# ---------------------------------------------------------------------------- graph pass

def node_ops(sym):
    return {node["name"]: node for node in json.loads(sym.tojson())["nodes"]}


def test_pass_converts_vgg16_ssd300_keeping_parameter_names():
    net = get_symbol("vgg16_reduced", 300, 20)
    fast = use_winograd(net, {"data": (1, 3, 300, 300)}, enabled=True)
    assert fast.list_arguments() == net.list_arguments()
    assert fast.list_outputs() == net.list_outputs()
    shapes = [net.infer_shape(data=(1, 3, 300, 300)), fast.infer_shape(data=(1, 3, 300, 300))]
    assert shapes[0] == shapes[1]
    nodes = node_ops(fast)
    converted = {name: node["attrs"] for name, node in nodes.items() if node["op"] == OP_NAME}
    # conv2_1 .. conv5_3 with their ReLUs fused, named after the ReLU; conv1_1 (3 input
    # channels), conv1_2 (reads oneDNN's conv1_1 at 300x300), fc6 (dilated), fc7 (1x1) and
    # the small maps stay with oneDNN
    assert {"relu%s" % n for n in ("2_1", "2_2", "3_1", "3_2", "3_3", "4_1", "4_2", "4_3",
                                   "5_1", "5_2", "5_3")} <= set(converted)
    assert converted["relu4_3"] == {"num_filter": "512", "pad": "(1, 1)", "no_bias": "False",
                                    "relu": "True"}
    assert all(nodes[name]["op"] == "Convolution"
               for name in ("conv1_1", "conv1_2", "fc6", "fc7", "multi_feat_2_conv_3x3_conv"))
    assert converted["relu7_cls_pred_conv_crop"]["num_filter"] == "126"  # reads fc7, 19x19
    # a zero-padded head runs on its true weights: 21 classes x 4 anchors, no padding nodes
    head = converted["relu4_3_cls_pred_conv_crop"]
    assert head["num_filter"] == "84" and head["relu"] == "False"
    assert not any(name.endswith(("_padded", "_pad")) and name.startswith("relu4_3")
                   for name in nodes)


def test_pass_leaves_ineligible_convolutions_and_obeys_the_switch(monkeypatch):
    data = mx.sym.var("data")
    strided = mx.sym.Convolution(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=32,
                                 name="strided")
    dilated = mx.sym.Convolution(strided, kernel=(3, 3), dilate=(2, 2), pad=(2, 2),
                                 num_filter=32, name="dilated")
    grouped = mx.sym.Convolution(dilated, kernel=(3, 3), pad=(1, 1), num_group=2, num_filter=32,
                                 name="grouped")
    pointwise = mx.sym.Convolution(grouped, kernel=(1, 1), num_filter=32, name="pointwise")
    plain = mx.sym.Convolution(pointwise, kernel=(3, 3), pad=(1, 1), num_filter=32, name="plain")
    half = mx.sym.Convolution(mx.sym.Cast(plain, dtype="float16"), kernel=(3, 3), pad=(1, 1),
                              num_filter=32, name="half")
    shapes = {"data": (1, 32, 64, 64)}
    everywhere = use_winograd(half, shapes, enabled=True, pays=lambda layer: True)
    assert [n for n, node in node_ops(everywhere).items() if node["op"] == OP_NAME] == ["plain"]
    single = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=64, name="single")
    shapes = {"data": (1, 64, 32, 32)}
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert use_winograd(single, shapes) is single
    monkeypatch.setenv(ENV_SWITCH, "1")
    assert node_ops(use_winograd(single, shapes))["single"]["op"] == OP_NAME
    assert use_winograd(single, shapes, enabled=False) is single


def test_pass_leaves_a_convolution_reading_a_onednn_convolution_on_a_large_map():
    """MXNet converts a oneDNN convolution's output for our operator, which on large maps
    costs more than Winograd saves: there the pass converts a chain only from its start."""
    data = mx.sym.var("data")
    first = mx.sym.Convolution(data, kernel=(1, 1), num_filter=64, name="first")
    second = mx.sym.Convolution(mx.sym.Activation(first, act_type="relu"), kernel=(3, 3),
                                pad=(1, 1), num_filter=64, name="second")       # 160 x 160
    pooled = mx.sym.Pooling(second, kernel=(2, 2), stride=(2, 2), pool_type="max")
    third = mx.sym.Convolution(pooled, kernel=(3, 3), pad=(1, 1), num_filter=64, name="third")
    fourth = mx.sym.Convolution(mx.sym.BatchNorm(third, name="bn"), kernel=(3, 3), pad=(1, 1),
                                num_filter=64, name="fourth")
    pooled = mx.sym.Pooling(mx.sym.Convolution(fourth, kernel=(1, 1), num_filter=64, name="1x1"),
                            kernel=(2, 2), stride=(2, 2), pool_type="max")
    fifth = mx.sym.Convolution(mx.sym.Convolution(pooled, kernel=(1, 1), num_filter=64,
                                                  name="another_1x1"),
                               kernel=(3, 3), pad=(1, 1), num_filter=64, name="fifth")  # 40 x 40
    shapes = {"data": (1, 64, 160, 160)}
    layers = {layer.name: layer for layer in winograd_layers(fifth, shapes)}
    assert layers["second"].input_from == "Convolution"
    assert layers["third"].input_from == "Pooling"
    assert layers["fourth"].input_from == OP_NAME  # through BatchNorm, to converted "third"
    assert layers["fifth"].input_from == "Convolution"
    ops = {name: node["op"] for name, node in
           node_ops(use_winograd(fifth, shapes, enabled=True)).items()}
    assert [ops[name] for name in ("second", "third", "fourth", "fifth")] == [
        "Convolution", OP_NAME, OP_NAME, OP_NAME]


def test_pass_keeps_a_relu_that_others_also_read():
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=64, name="conv")
    both = mx.sym.Group([mx.sym.Activation(conv, act_type="relu", name="relu"), conv])
    nodes = node_ops(use_winograd(both, {"data": (1, 64, 40, 40)}, enabled=True))
    assert nodes["conv"]["op"] == OP_NAME and nodes["conv"]["attrs"]["relu"] == "False"
    assert nodes["relu"]["op"] == "Activation"


def matched(reference_rows, candidate_rows, min_score):
    """Each reference detection scoring >= min_score has a candidate of the same class with
    the same score and box (float32 rounding apart)."""
    for row in reference_rows[reference_rows[:, 1] >= min_score]:
        same = candidate_rows[(candidate_rows[:, 0] == row[0])
                              & (np.abs(candidate_rows[:, 1] - row[1]) <= 1e-4)
                              & (np.abs(candidate_rows[:, 2:] - row[2:]).max(axis=1) <= 1e-3)]
        if not len(same):
            return False
    return True


def test_shipped_model_detections_are_unchanged(shipped_model):
    """All ten 3x3 heads of the shipped MobileNet SSD as Winograd (forced: at 224 pixels the
    speed rule keeps only two), 4 synthetic images: the same detections above 0.01."""
    from test_quantize import synthetic_batch
    from symbol import model_io
    sym, args, auxs = mx.model.load_checkpoint(shipped_model,
                                               model_io.saved_epochs(shipped_model)[-1])
    images = synthetic_batch("val", 4, 224)
    fast = use_winograd(sym, {"data": images.shape}, enabled=True, pays=lambda layer: True)
    assert sum(node["op"] == OP_NAME for node in node_ops(fast).values()) == 10
    outputs = []
    for net in (sym, fast):
        exe = net.simple_bind(mx.cpu(), grad_req="null", data=images.shape)
        exe.copy_params_from(args, auxs, allow_extra_params=True)
        exe.arg_dict["data"][:] = images
        outputs.append(exe.forward(is_train=False)[0].asnumpy())
    reference_out, fast_out = outputs
    assert (reference_out[:, :, 1] >= 0.5).sum() >= 4  # real detections to compare
    for image in range(len(images)):
        # a score within 1e-4 of the 0.01 threshold may fall either side of it
        assert matched(reference_out[image], fast_out[image], 0.01 + 1e-4)
        assert matched(fast_out[image], reference_out[image], 0.01 + 1e-4)
