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
