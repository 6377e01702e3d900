"""The compiled Caffe proto, error reporting on bad input, and mean_image.py."""
import os

import mxnet as mx
import numpy as np
import pytest

from tools.caffe_converter import mean_image, proto
from tools.caffe_converter.caffe_io import CaffeError, read_prototxt
from tools.caffe_converter.converter import convert
from tools.caffe_converter.netspec import NetWriter, fill_blob

# Field numbers from the public definitions (BVLC/caffe and weiliu89/caffe "ssd", see the
# header of caffe.proto): binary .caffemodel files are only readable if these match.
PUBLIC_FIELD_NUMBERS = {
    ("NetParameter", "layer"): 100, ("NetParameter", "layers"): 2,
    ("NetParameter", "input_dim"): 4, ("NetParameter", "input_shape"): 8,
    ("LayerParameter", "blobs"): 7, ("LayerParameter", "convolution_param"): 106,
    ("LayerParameter", "batch_norm_param"): 139, ("LayerParameter", "scale_param"): 142,
    ("LayerParameter", "input_param"): 143, ("LayerParameter", "permute_param"): 202,
    ("LayerParameter", "prior_box_param"): 203, ("LayerParameter", "detection_output_param"): 204,
    ("LayerParameter", "norm_param"): 206, ("BlobProto", "shape"): 7, ("BlobProto", "data"): 5,
    ("V1LayerParameter", "blobs"): 6, ("V1LayerParameter", "type"): 5,
    ("V1LayerParameter", "name"): 4, ("V1LayerParameter", "convolution_param"): 10,
    ("PriorBoxParameter", "step"): 10, ("PriorBoxParameter", "offset"): 13,
    ("DetectionOutputParameter", "keep_top_k"): 7,
    ("DetectionOutputParameter", "confidence_threshold"): 9,
    ("DetectionOutputParameter", "variance_encoded_in_target"): 8,
    ("NonMaximumSuppressionParameter", "top_k"): 2, ("NormalizeParameter", "eps"): 4,
}


def test_compiled_proto_uses_public_field_numbers():
    pb = proto.load_caffe_pb2()
    actual = {(message, field): getattr(pb, message).DESCRIPTOR.fields_by_name[field].number
              for message, field in PUBLIC_FIELD_NUMBERS}
    assert actual == PUBLIC_FIELD_NUMBERS


def test_stale_generated_module_is_rebuilt():
    module_time = os.path.getmtime(proto.PROTO_PATH) - 10
    os.utime(proto.MODULE_PATH, (module_time, module_time))
    assert proto.is_stale()
    proto.build()
    assert not proto.is_stale()
    with open(proto.MODULE_PATH) as f:
        compile(f.read(), proto.MODULE_PATH, "exec")  # complete, importable Python


def test_ssd_caffe_layer_parameters_round_trip_binary():
    """A PriorBox layer serialized with SSD-Caffe's field numbers keeps its settings."""
    pb = proto.load_caffe_pb2()
    layer = pb.LayerParameter(name="p", type="PriorBox")
    layer.prior_box_param.min_size.append(30)
    layer.prior_box_param.step = 8
    parsed = pb.LayerParameter.FromString(layer.SerializeToString())
    assert list(parsed.prior_box_param.min_size) == [30] and parsed.prior_box_param.step == 8
    # field 203, wire type 2 (length-delimited) -> tag varint 0xda 0x0c
    assert b"\xda\x0c" in layer.SerializeToString()


def small_net(tmp_path, weight_shape=(4, 3, 3, 3), extra_layer=None, bias=True):
    net = NetWriter("small")
    net.input("data", (1, 3, 8, 8))
    blobs = [np.ones(weight_shape)] + ([np.zeros(4)] if bias else [])
    net.add("Convolution", "conv1", ["data"], blobs=blobs,
            convolution_param=dict(num_output=4, kernel_size=3))
    if extra_layer:
        net.add(*extra_layer[:3], **extra_layer[3])
    return net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))


def test_unsupported_layer_names_layer_and_type(tmp_path):
    prototxt, caffemodel = small_net(tmp_path, extra_layer=("Foo", "foo_layer", ["conv1"], {}))
    with pytest.raises(CaffeError, match=r"layer 'foo_layer' has unsupported type 'Foo'"):
        convert(prototxt, caffemodel)


def test_data_layer_is_refused_with_advice(tmp_path):
    (tmp_path / "train.prototxt").write_text(
        'layer { name: "data" type: "Data" top: "data" data_param { source: "x" } }')
    with pytest.raises(CaffeError, match=r"layer 'data' \(Data\): data layers are not converted"):
        convert(str(tmp_path / "train.prototxt"))


@pytest.mark.parametrize("corrupt", ["truncated", "garbage", "empty"])
def test_corrupt_caffemodel_gives_clear_error(tmp_path, corrupt):
    prototxt, caffemodel = small_net(tmp_path)
    data = open(caffemodel, "rb").read()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"\xff\xfe not protobuf" * 10,
              "empty": b""}[corrupt]
    with open(caffemodel, "wb") as f:
        f.write(broken)
    with pytest.raises(CaffeError, match=r"n\.caffemodel: not a valid caffemodel \(truncated "
                                         r"or corrupt file\)"):
        convert(prototxt, caffemodel)


def test_blob_shape_mismatch_names_layer_and_both_shapes(tmp_path):
    prototxt, caffemodel = small_net(tmp_path, weight_shape=(4, 3, 5, 5))
    with pytest.raises(CaffeError, match=r"layer 'conv1' \(Convolution\): blob 0 has shape "
                                         r"\(4, 3, 5, 5\) in the caffemodel but the prototxt "
                                         r"implies \(4, 3, 3, 3\)"):
        convert(prototxt, caffemodel)


def test_blob_count_mismatch_is_refused(tmp_path):
    prototxt, caffemodel = small_net(tmp_path, bias=False)
    with pytest.raises(CaffeError, match=r"layer 'conv1' \(Convolution\): has 1 blob\(s\) in "
                                         r"the caffemodel but the prototxt implies 2"):
        convert(prototxt, caffemodel)


def test_layer_without_weights_is_reported(tmp_path):
    prototxt, caffemodel = small_net(tmp_path, extra_layer=(
        "InnerProduct", "fc", ["conv1"], dict(inner_product_param=dict(num_output=2))))
    with pytest.raises(CaffeError, match=r"layer 'fc' \(InnerProduct\): has no weights"):
        convert(prototxt, caffemodel)


def test_legacy_4d_blob_shapes_are_accepted(tmp_path):
    """Old caffemodels give an InnerProduct weight as num/channels/height/width (1, 1, out, in)."""
    net = NetWriter("legacy")
    net.input("data", (1, 2, 1, 1))
    net.add("InnerProduct", "fc", ["data"], blobs=[np.arange(6).reshape(3, 2), np.zeros(3)],
            inner_product_param=dict(num_output=3))
    prototxt, caffemodel = net.save(str(tmp_path / "n.prototxt"), str(tmp_path / "n.caffemodel"))
    model_net = proto.load_caffe_pb2().NetParameter.FromString(open(caffemodel, "rb").read())
    weight = model_net.layer[1].blobs[0]
    weight.ClearField("shape")
    weight.num, weight.channels, weight.height, weight.width = 1, 1, 3, 2
    with open(caffemodel, "wb") as f:
        f.write(model_net.SerializeToString())
    out = convert(prototxt, caffemodel).forward(data=np.array([1.0, 10.0]).reshape(1, 2, 1, 1))[0]
    np.testing.assert_allclose(out, [[10, 32, 54]])


def test_prototxt_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: Convolution\n}\n')
    with pytest.raises(CaffeError, match=r"broken\.prototxt: invalid prototxt: 4:"):
        read_prototxt(str(path))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(CaffeError, match=r"cannot read prototxt .*nothere\.prototxt"):
        convert(str(tmp_path / "nothere.prototxt"))


def test_bottom_without_producer_is_reported(tmp_path):
    prototxt, caffemodel = small_net(tmp_path, extra_layer=("ReLU", "relu", ["nope"], {}))
    with pytest.raises(CaffeError, match=r"layer 'relu' \(ReLU\): bottom 'nope' is not produced"):
        convert(prototxt, caffemodel)


def test_train_phase_layers_are_skipped(tmp_path):
    prototxt, caffemodel = small_net(tmp_path)
    with open(prototxt, "a") as f:
        f.write('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" top: "loss" '
                'include { phase: TRAIN } }\n')
    assert convert(prototxt, caffemodel).symbol.list_outputs() == ["conv1_output"]


def write_mean(path, mean_bgr):
    pb = proto.load_caffe_pb2()
    blob = pb.BlobProto()
    fill_blob(blob, mean_bgr)
    path.write_bytes(blob.SerializeToString())


def test_mean_image_converts_bgr_to_rgb(tmp_path, capsys):
    mean_bgr = np.stack([np.full((4, 5), 104.0), np.arange(20.0).reshape(4, 5),
                         np.full((4, 5), 123.0)])[None]
    write_mean(tmp_path / "mean.binaryproto", mean_bgr)
    out = str(tmp_path / "mean.nd")
    assert mean_image.main([str(tmp_path / "mean.binaryproto"), out]) == 0
    saved = mx.nd.load(out)["mean_image"].asnumpy()
    assert saved.shape == (3, 4, 5)
    np.testing.assert_array_equal(saved[0], mean_bgr[0, 2])  # R from Caffe's third channel
    np.testing.assert_array_equal(saved[1], mean_bgr[0, 1])
    np.testing.assert_array_equal(saved[2], mean_bgr[0, 0])  # the original overwrote this one
    assert "123.000 9.500 104.000" in capsys.readouterr().out


def test_mean_image_rejects_corrupt_file(tmp_path, capsys):
    (tmp_path / "mean.binaryproto").write_bytes(b"\x0a\xff\xff")
    assert mean_image.main([str(tmp_path / "mean.binaryproto"), str(tmp_path / "m.nd")]) == 1
    assert "not a valid binaryproto blob (truncated or corrupt file)" in capsys.readouterr().err


def strided_net(tmp_path):
    """small_net with `stride: 2` in conv1, as text."""
    prototxt, caffemodel = small_net(tmp_path)
    text = open(prototxt).read().replace("kernel_size: 3", "kernel_size: 3\n    stride: 2")
    return prototxt, caffemodel, text


def convert_text(prototxt, text, caffemodel=None):
    with open(prototxt, "w") as f:
        f.write(text)
    return convert(prototxt, caffemodel)


def test_misspelt_field_in_a_converted_layer_names_file_line_and_field(tmp_path):
    prototxt, caffemodel, text = strided_net(tmp_path)
    outputs = convert_text(prototxt, text, caffemodel).forward(data=np.ones((1, 3, 8, 8)))
    assert outputs[0].shape == (1, 4, 3, 3)   # the stride is applied
    # without the check `strde` was dropped: a stride-1 network (1, 4, 6, 6), exit code 0
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "stride" in l)
    with pytest.raises(CaffeError) as err:
        convert_text(prototxt, text.replace("stride:", "strde:"), caffemodel)
    assert str(err.value) == (
        "%s:%d:5: layer 'conv1' (Convolution): Message type \"caffe.ConvolutionParameter\" has "
        "no field named \"strde\" (misspelt, or not a setting of this layer type)"
        % (prototxt, line))


def test_misspelt_net_level_field_is_refused(tmp_path):
    prototxt, caffemodel = small_net(tmp_path)
    text = 'input_dims: 1\n' + open(prototxt).read()
    with pytest.raises(CaffeError, match=r'^%s:1:1: Message type "caffe.NetParameter" has no '
                       r'field named "input_dims"$' % prototxt):
        convert_text(prototxt, text, caffemodel)


def test_unknown_fields_of_layers_not_converted_are_tolerated(tmp_path):
    # a TRAIN-only layer of a fork's own type may carry settings caffe.proto does not define;
    # braces inside strings and comments do not confuse the layer boundaries
    prototxt, caffemodel = small_net(tmp_path)
    text = open(prototxt).read() + (
        'layer { name: "loss}" type: "FancyLoss" bottom: "conv1" top: "loss"  # } {\n'
        '  include { phase: TRAIN } fancy_param { margin: 1 } }\n')
    assert convert_text(prototxt, text, caffemodel).symbol.list_outputs() == ["conv1_output"]
    unsupported = text.replace("include { phase: TRAIN } ", "")
    with pytest.raises(CaffeError, match=r"layer 'loss}' has unsupported type 'FancyLoss'"):
        convert_text(prototxt, unsupported, caffemodel)


@pytest.mark.parametrize("layer, message", [
    # each of these was a ZeroDivisionError / ValueError / bare Exception found by the fuzz test
    (("Pooling", "pool", ["conv1"], dict(pooling_param=dict(pool="MAX", kernel_size=2,
                                                             stride=0))),
     r"layer 'pool' \(Pooling\): stride must be >= 1, got \(0, 0\)"),
    (("Convolution", "conv2", ["conv1"], dict(convolution_param=dict(num_output=4, kernel_size=1,
                                                                      group=0))),
     r"layer 'conv2' \(Convolution\): group 0 does not divide 4 input / 4 output channels"),
    (("PriorBox", "priors", ["conv1", "data"], dict(prior_box_param=dict(
        min_size=2, aspect_ratio=[0.0], variance=[0.1]))),
     r"layer 'priors' \(PriorBox\): aspect_ratio must be positive, got 0"),
    (("PriorBox", "priors", ["conv1", "data"], dict(prior_box_param=dict(
        min_size=-1, max_size=4, variance=[0.1]))),
     r"layer 'priors' \(PriorBox\): min_size must be positive, got -1"),
    (("PriorBox", "priors", ["conv1", "data"], dict(prior_box_param=dict(
        min_size=2, step=0, variance=[0.1]))),
     r"layer 'priors' \(PriorBox\): step must be positive, got 0"),
    (("PriorBox", "priors", ["conv1", "data"], dict(prior_box_param=dict(
        min_size=2, offset=-3.0, variance=[0.1]))),
     r"layer 'priors' \(PriorBox\): MXNet rejects it: MultiBoxPrior: argument 'offsets' must "
     r"be a pair of floats in \[0, 1\] \(y, x\), got '\(-3,-3\)'$"),
])
def test_impossible_layer_values_are_refused_by_name(tmp_path, layer, message):
    prototxt, _ = small_net(tmp_path, extra_layer=layer)
    with pytest.raises(CaffeError, match=message):
        convert(prototxt)


@pytest.mark.parametrize("dims", [(1, 3, 2 ** 31, 8), (1, 3, 0, 8), (1, 3, -5, 8)])
def test_impossible_input_shape_is_refused(tmp_path, dims):
    prototxt, _ = small_net(tmp_path)
    text = open(prototxt).read().replace("dim: 8\n", "dim: %d\n" % dims[2], 1)
    with pytest.raises(CaffeError, match=r"^input 'data' has shape \(1, 3, %d, 8\): each "
                       r"dimension must be >= 1 and the tensor hold fewer than 2\^31 values"
                       % dims[2]):
        convert_text(prototxt, text)


def test_tensor_over_mxnet_limit_names_the_layer(tmp_path):
    prototxt, _ = small_net(tmp_path)
    text = open(prototxt).read().replace("num_output: 4", "num_output: 1073741824")
    with pytest.raises(CaffeError, match=r"^layer 'conv1' \(Convolution\): its output 'conv1' "
                       r"\(1, 1073741824, 6, 6\) holds 2\^31 values or more \(MXNet's limit\)$"):
        convert_text(prototxt, text)


def test_convert_symbol_cli_reports_a_misspelt_field_in_one_line(tmp_path, capsys):
    from tools.caffe_converter import convert_symbol
    prototxt, _, text = strided_net(tmp_path)
    with open(prototxt, "w") as f:
        f.write(text.replace("stride:", "strde:"))
    assert convert_symbol.main([prototxt]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: %s:" % prototxt) and "strde" in err
