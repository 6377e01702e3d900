"""Layer zoo: one small Caffe model per supported layer type, run by OpenCV's Caffe importer
(cv2.dnn) and, after conversion, by MXNet; the output blobs must agree to 1e-4 relative."""
import json

import numpy as np
import pytest

from tools.caffe_converter import caffe_io
from tools.caffe_converter.caffe_io import CaffeError
from tools.caffe_converter.compare import opencv_forward, relative_error
from tools.caffe_converter.converter import convert
from tools.caffe_converter.netspec import NetWriter

TOLERANCE = 1e-4


def he_normal(rng, shape, gain=1.0):
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * gain * np.sqrt(2.0 / fan_in)).astype(np.float32)


def conv(net, rng, name, bottom, cin, cout, kernel=3, pad=1, bias_term=True, **extra):
    blobs = [he_normal(rng, (cout, cin, kernel, kernel))]
    blobs += [rng.standard_normal(cout) * 0.1] if bias_term else []
    net.add("Convolution", name, [bottom], blobs=blobs,
            convolution_param=dict(num_output=cout, kernel_size=kernel, pad=pad,
                                   bias_term=bias_term, **extra))
    return name


def run_both(tmp_path, net, input_shape, output, seed=1, **convert_kwargs):
    """(MXNet output, OpenCV output of layer ``output``) for one random input; the converted
    model gets the channel-reversed input when it was converted with the BGR->RGB swap.
    OpenCV names outputs by layer, so ``output`` is the last layer writing the blob."""
    prototxt, caffemodel = net.save(str(tmp_path / "net.prototxt"),
                                    str(tmp_path / "net.caffemodel"))
    bgr = np.random.default_rng(seed).uniform(-1, 1, input_shape).astype(np.float32)
    expected = opencv_forward(prototxt, caffemodel, bgr, [output])[0]
    convert_kwargs.setdefault("swap_rgb", False)
    model = convert(prototxt, caffemodel, **convert_kwargs)
    image = bgr[:, ::-1] if convert_kwargs["swap_rgb"] else bgr
    return model.forward(data=np.ascontiguousarray(image))[0], expected


# Each case builds a net on a (1, 4, 9, 9) input "data" and names the blob to compare.
def case_convolution_group_dilation(net, rng):
    net.add("Convolution", "conv", ["data"], blobs=[he_normal(rng, (6, 2, 3, 2))],
            convolution_param=dict(num_output=6, group=2, kernel_h=3, kernel_w=2, pad_h=2,
                                   pad_w=1, stride=2, dilation=2, bias_term=False))
    return "conv"


def case_deconvolution(net, rng):
    net.add("Deconvolution", "deconv", ["data"],
            blobs=[he_normal(rng, (4, 3, 4, 4)), rng.standard_normal(3)],
            convolution_param=dict(num_output=3, kernel_size=4, stride=2, pad=1))
    return "deconv"


def case_max_pooling_ceil(net, rng):
    # (9 - 2) / 2 rounds up in Caffe: 5x5 output where floor would give 4x4
    net.add("Pooling", "pool", ["data"], pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
    return "pool"


def case_average_pooling_padded(net, rng):
    # Caffe drops the last window that would start in the padding: 5x5, not ceil's 6x6
    net.add("Pooling", "pool", ["data"],
            pooling_param=dict(pool="AVE", kernel_size=3, stride=2, pad=1))
    return "pool"


def case_average_pooling_rectangular(net, rng):
    net.add("Pooling", "pool", ["data"],
            pooling_param=dict(pool="AVE", kernel_h=3, kernel_w=2, stride_h=2, stride_w=2,
                               pad_h=1, pad_w=0))
    return "pool"


def case_global_pooling(net, rng):
    net.add("Pooling", "gmax", ["data"], pooling_param=dict(pool="MAX", global_pooling=True))
    net.add("Pooling", "gave", ["data"], pooling_param=dict(pool="AVE", global_pooling=True))
    net.add("Eltwise", "sum", ["gmax", "gave"], eltwise_param=dict(operation="SUM"))
    return "sum"


def case_leaky_relu(net, rng):
    net.add("ReLU", "relu", ["data"], relu_param=dict(negative_slope=0.1))
    return "relu"


def case_prelu(net, rng):
    net.add("PReLU", "prelu", ["data"], blobs=[rng.uniform(0, 0.5, 4)])
    net.add("PReLU", "prelu_shared", ["prelu"], blobs=[np.array([0.3])],
            prelu_param=dict(channel_shared=True))
    return "prelu_shared"


def case_tanh_sigmoid(net, rng):
    net.add("TanH", "tanh", ["data"])
    net.add("Sigmoid", "sigmoid", ["tanh"])
    return "sigmoid"


def case_lrn(net, rng):
    # k stays 1: OpenCV ignores Caffe's k (see test_lrn_bias_k_follows_caffe)
    net.add("LRN", "lrn", ["data"], lrn_param=dict(local_size=3, alpha=0.5, beta=0.75))
    return "lrn"


def case_inner_product(net, rng):
    net.add("InnerProduct", "fc", ["data"],
            blobs=[he_normal(rng, (10, 4 * 9 * 9)), rng.standard_normal(10)],
            inner_product_param=dict(num_output=10))
    net.add("InnerProduct", "fc2", ["fc"], blobs=[he_normal(rng, (7, 10))],
            inner_product_param=dict(num_output=7, bias_term=False))
    return "fc2"


def case_dropout_split_concat(net, rng):
    net.add("Dropout", "drop", ["data"], dropout_param=dict(dropout_ratio=0.5))
    net.add("Split", "split", ["drop"], tops=["a", "b"])
    net.add("TanH", "tanh", ["b"])
    net.add("Concat", "concat_c", ["a", "tanh"], concat_param=dict(axis=1))
    net.add("Concat", "concat_h", ["concat_c", "concat_c"], concat_param=dict(axis=2))
    return "concat_h"


def case_softmax(net, rng):
    net.add("Softmax", "prob", ["data"])
    net.add("Reshape", "rows", ["prob"], reshape_param=dict(shape=dict(dim=[0, -1, 9])))
    net.add("Softmax", "prob_rows", ["rows"], softmax_param=dict(axis=2))
    return "prob_rows"


def case_flatten_reshape(net, rng):
    net.add("Flatten", "flat_hw", ["data"], flatten_param=dict(axis=2, end_axis=3))
    net.add("Reshape", "middle", ["flat_hw"],
            reshape_param=dict(shape=dict(dim=[9, -1]), axis=2, num_axes=1))
    net.add("Flatten", "flat", ["middle"])
    return "flat"


def case_permute(net, rng):
    net.add("Permute", "perm", ["data"], permute_param=dict(order=[0, 2, 3, 1]))
    return "perm"


def case_crop(net, rng):
    net.add("Pooling", "small", ["data"], pooling_param=dict(pool="MAX", kernel_size=3, stride=2))
    net.add("Crop", "crop", ["data", "small"], crop_param=dict(axis=2, offset=[1, 2]))
    return "crop"


def case_eltwise(net, rng):
    net.add("TanH", "t", ["data"])
    net.add("Sigmoid", "s", ["data"])
    net.add("Eltwise", "weighted", ["data", "t", "s"],
            eltwise_param=dict(operation="SUM", coeff=[0.5, -2.0, 1.5]))
    net.add("Eltwise", "prod", ["weighted", "t"], eltwise_param=dict(operation="PROD"))
    net.add("Eltwise", "max", ["prod", "s", "data"], eltwise_param=dict(operation="MAX"))
    return "max"


def case_batch_norm_alone(net, rng):
    factor = 0.7  # Caffe stores running sums; blob 2 is their normaliser
    net.add("BatchNorm", "bn", ["data"],
            blobs=[rng.standard_normal(4) * factor, rng.uniform(0.5, 2, 4) * factor, [factor]],
            batch_norm_param=dict(use_global_stats=True, eps=1e-3))
    return "bn"


def case_scale(net, rng):
    net.add("Scale", "scale_bias", ["data"], blobs=[rng.standard_normal(4), rng.standard_normal(4)],
            scale_param=dict(bias_term=True))
    net.add("Scale", "scale", ["scale_bias"], blobs=[rng.standard_normal(4)])
    return "scale"


def case_normalize(net, rng):
    net.add("Normalize", "norm", ["data"], blobs=[rng.uniform(5, 20, 4)],
            norm_param=dict(across_spatial=False, channel_shared=False))
    net.add("Normalize", "norm_shared", ["norm"], blobs=[np.array([3.0])],
            norm_param=dict(across_spatial=True, channel_shared=True))
    return "norm_shared"


ZOO = [case_convolution_group_dilation, case_deconvolution, case_max_pooling_ceil,
       case_average_pooling_padded, case_average_pooling_rectangular, case_global_pooling,
       case_leaky_relu, case_prelu, case_tanh_sigmoid, case_lrn, case_inner_product,
       case_dropout_split_concat, case_softmax, case_flatten_reshape, case_permute, case_crop,
       case_eltwise, case_batch_norm_alone, case_scale, case_normalize]
ZOO_INPUT = (1, 4, 9, 9)


@pytest.mark.parametrize("build", ZOO, ids=[c.__name__[len("case_"):] for c in ZOO])
def test_layer_matches_opencv(tmp_path, build):
    net = NetWriter(build.__name__)
    net.input("data", ZOO_INPUT)
    output = build(net, np.random.default_rng(0))
    actual, expected = run_both(tmp_path, net, ZOO_INPUT, output)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) < TOLERANCE


def convert_single_layer(tmp_path, layer_type, input_shape, blobs=(), **params):
    net = NetWriter(layer_type)
    net.input("data", input_shape)
    net.add(layer_type, "layer", ["data"], blobs=blobs, **params)
    return convert(*net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel")),
                   swap_rgb=False)


def test_lrn_bias_k_follows_caffe(tmp_path):
    """Caffe: x / (k + alpha/n * sum of x^2 over n neighbouring channels)^beta."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, 5, 3, 3)).astype(np.float32)
    model = convert_single_layer(tmp_path, "LRN", x.shape,
                                 lrn_param=dict(local_size=3, alpha=0.5, beta=0.75, k=2))
    squares = np.pad(x ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    window_sums = squares[:, :-2] + squares[:, 1:-1] + squares[:, 2:]
    expected = x / (2 + 0.5 / 3 * window_sums) ** 0.75
    assert relative_error(model.forward(data=x)[0], expected) < TOLERANCE


def test_inner_product_transpose_follows_caffe(tmp_path):
    """transpose: true stores the weights as (inputs, outputs): y = x W."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3, 2, 2)).astype(np.float32)
    weight = rng.standard_normal((12, 5)).astype(np.float32)
    model = convert_single_layer(tmp_path, "InnerProduct", x.shape, blobs=[weight],
                                 inner_product_param=dict(num_output=5, bias_term=False,
                                                          transpose=True))
    assert relative_error(model.forward(data=x)[0], x.reshape(2, 12) @ weight) < TOLERANCE


@pytest.mark.parametrize("pooling, expected", [
    (dict(kernel_size=2, stride=2), (5, 5)),             # ceil((9-2)/2)+1 = 5, floor gives 4
    (dict(kernel_size=3, stride=2, pad=1), (5, 5)),      # ceil gives 6; window 6 starts in pad
    # pad_h alone makes Caffe check the width too: ceil((9-2)/3)+1 = 4, 3*3 >= 9+0 -> 3
    (dict(kernel_h=3, kernel_w=2, stride_h=2, stride_w=3, pad_h=1, pad_w=0), (5, 3)),
])
def test_pooling_output_size_follows_caffe_rounding(tmp_path, pooling, expected):
    net = NetWriter("pool")
    net.input("data", ZOO_INPUT)
    net.add("Pooling", "pool", ["data"], pooling_param=dict(pool="AVE", **pooling))
    prototxt, _ = net.save(str(tmp_path / "n.prototxt"))
    model = convert(prototxt, swap_rgb=False)
    assert model.symbol.infer_shape(data=ZOO_INPUT)[1][0] == (1, 4) + expected


def resnet_block(net, rng, bottom, cin, cout, prefix):
    """Caffe ResNet style: conv -> in-place BatchNorm -> in-place Scale (-> ReLU)."""
    def conv_bn(name, source, channels_in, kernel, relu):
        conv(net, rng, name, source, channels_in, cout, kernel=kernel, pad=kernel // 2,
             bias_term=False)
        factor = rng.uniform(0.5, 2.0)
        net.add("BatchNorm", "bn_" + name, [name], tops=[name],
                blobs=[rng.standard_normal(cout) * factor, rng.uniform(0.5, 2, cout) * factor,
                       [factor]])
        net.add("Scale", "scale_" + name, [name], tops=[name],
                blobs=[rng.uniform(0.5, 1.5, cout), rng.standard_normal(cout)],
                scale_param=dict(bias_term=True))
        if relu:
            net.add("ReLU", name + "_relu", [name], tops=[name])
        return name
    branch = conv_bn(prefix + "_branch2a", bottom, cin, 3, relu=True)
    branch = conv_bn(prefix + "_branch2b", branch, cout, 3, relu=False)
    shortcut = conv_bn(prefix + "_branch1", bottom, cin, 1, relu=False)
    net.add("Eltwise", prefix, [shortcut, branch])
    net.add("ReLU", prefix + "_relu", [prefix], tops=[prefix])
    return prefix + "_relu"


def test_resnet_block_with_batchnorm_scale_eltwise(tmp_path):
    rng = np.random.default_rng(0)
    net = NetWriter("resnet_block")
    net.input("data", (1, 3, 16, 16))
    conv(net, rng, "conv1", "data", 3, 8, kernel=3)
    output = resnet_block(net, rng, "conv1", 8, 8, "res2a")
    actual, expected = run_both(tmp_path, net, (1, 3, 16, 16), output, swap_rgb=True)
    assert relative_error(actual, expected) < TOLERANCE


def test_batchnorm_followed_by_scale_becomes_one_mxnet_batchnorm(tmp_path):
    rng = np.random.default_rng(0)
    net = NetWriter("resnet_block")
    net.input("data", (1, 3, 16, 16))
    resnet_block(net, rng, "data", 3, 4, "res2a")
    prototxt, caffemodel = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    model = convert(prototxt, caffemodel, swap_rgb=False)
    ops = [node["op"] for node in json.loads(model.symbol.tojson())["nodes"]]
    assert ops.count("BatchNorm") == 3 and "broadcast_mul" not in ops
    scale_blobs = {layer.name: layer.blobs for layer in caffe_io.layer_views(
        caffe_io.read_caffemodel(caffemodel))}["scale_res2a_branch2a"]
    np.testing.assert_array_equal(model.arg_params["bn_res2a_branch2a_gamma"],
                                  caffe_io.blob_array(scale_blobs[0], "gamma"))
    np.testing.assert_array_equal(model.arg_params["bn_res2a_branch2a_beta"],
                                  caffe_io.blob_array(scale_blobs[1], "beta"))
    assert not any(name.startswith("scale_") for name in model.arg_params)


def test_v1_layers_format(tmp_path):
    """The old ``layers { type: CONVOLUTION }`` format with net-level input_dim."""
    rng = np.random.default_rng(0)
    net = NetWriter("v1", v1=True)
    net.input("data", (1, 3, 12, 12))
    conv(net, rng, "conv1", "data", 3, 6)
    net.add("ReLU", "relu1", ["conv1"], tops=["conv1"])
    net.add("Pooling", "pool1", ["conv1"], pooling_param=dict(pool="MAX", kernel_size=3, stride=2))
    net.add("LRN", "norm1", ["pool1"], lrn_param=dict(local_size=5, alpha=1e-2, beta=0.75))
    net.add("InnerProduct", "fc", ["norm1"], blobs=[he_normal(rng, (5, 6 * 6 * 6)), np.zeros(5)],
            inner_product_param=dict(num_output=5))
    net.add("Softmax", "prob", ["fc"])
    assert "layers {" in net.prototxt() and "type: CONVOLUTION" in net.prototxt()
    actual, expected = run_both(tmp_path, net, (1, 3, 12, 12), "prob", swap_rgb=True)
    assert relative_error(actual, expected) < TOLERANCE


@pytest.mark.parametrize("style", ["input_shape", "input_dim"])
def test_net_level_input_declarations(tmp_path, style):
    rng = np.random.default_rng(0)
    net = NetWriter("inputs")
    net.input("image", (1, 3, 8, 8), style=style)
    conv(net, rng, "conv1", "image", 3, 4)
    actual, expected = run_both(tmp_path, net, (1, 3, 8, 8), "conv1", swap_rgb=True)
    assert relative_error(actual, expected) < TOLERANCE


def test_swap_rgb_reverses_first_convolution_input_channels(tmp_path):
    """Fed the same BGR tensor, a swapped model differs from OpenCV; fed RGB it matches."""
    rng = np.random.default_rng(0)
    net = NetWriter("swap")
    net.input("data", (1, 3, 8, 8))
    net.add("Pooling", "pool", ["data"], pooling_param=dict(pool="MAX", kernel_size=2, stride=1))
    conv(net, rng, "conv1", "pool", 3, 4)
    prototxt, caffemodel = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    bgr = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    expected = opencv_forward(prototxt, caffemodel, bgr, ["conv1"])[0]
    swapped = convert(prototxt, caffemodel)
    assert relative_error(swapped.forward(data=bgr[:, ::-1].copy())[0], expected) < TOLERANCE
    assert relative_error(swapped.forward(data=bgr)[0], expected) > 0.05


@pytest.mark.parametrize("group", [1, 3])
def test_deconvolution_on_the_image_absorbs_the_swap(tmp_path, group):
    rng = np.random.default_rng(0)
    net = NetWriter("deconv_first")
    net.input("data", (1, 3, 5, 5))
    net.add("Deconvolution", "deconv", ["data"], blobs=[he_normal(rng, (3, 2, 3, 3))],
            convolution_param=dict(num_output=2 * group, group=group, kernel_size=3, stride=2,
                                   bias_term=False))
    if group == 1:
        actual, expected = run_both(tmp_path, net, (1, 3, 5, 5), "deconv", swap_rgb=True)
        assert relative_error(actual, expected) < TOLERANCE
        return
    prototxt, caffemodel = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    with pytest.raises(CaffeError, match=r"layer 'deconv' \(Deconvolution\): a grouped "
                                         r"convolution on the image cannot absorb"):
        convert(prototxt, caffemodel)


def test_input_scale_is_folded_into_first_convolution(tmp_path):
    rng = np.random.default_rng(0)
    net = NetWriter("scaled")
    net.input("data", (1, 3, 8, 8))
    conv(net, rng, "conv1", "data", 3, 4)
    prototxt, caffemodel = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    pixels = rng.uniform(-128, 128, (1, 3, 8, 8)).astype(np.float32)
    scale = 1 / 127.5
    expected = opencv_forward(prototxt, caffemodel, pixels * scale, ["conv1"])[0]
    model = convert(prototxt, caffemodel, input_scale=scale)
    assert relative_error(model.forward(data=pixels[:, ::-1].copy())[0], expected) < TOLERANCE


def test_swap_rgb_refuses_layers_that_cannot_absorb_it(tmp_path):
    net = NetWriter("lrn_first")
    net.input("data", (1, 3, 8, 8))
    net.add("LRN", "lrn", ["data"])
    prototxt, _ = net.save(str(tmp_path / "n.prototxt"))
    with pytest.raises(CaffeError, match=r"layer 'lrn' \(LRN\): reads the input image directly"):
        convert(prototxt)
    assert convert(prototxt, swap_rgb=False).input_shapes == {"data": (1, 3, 8, 8)}
