"""Reading Caffe files: text prototxt, binary caffemodel / binaryproto, and blobs.

Both layer formats are presented through :class:`LayerView`: the current ``layer { type:
"Convolution" }`` and the old V1 ``layers { type: CONVOLUTION }``.  Every parse failure is
raised as :class:`CaffeError` naming the file, never as a protobuf traceback.
"""
import re
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from .proto import load_caffe_pb2


class CaffeError(ValueError):
    """A Caffe file cannot be read or a network cannot be converted; the message says why."""


# V1 ``LayerType`` enum name -> current type string (as Caffe's own V1 upgrade names them).
V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU",
    "SIGMOID": "Sigmoid", "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH", "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}
TEST_PHASE = 1  # caffe.Phase.TEST; a converted deploy network runs in the test phase


@dataclass
class LayerView:
    """One layer, whichever format it came from.  ``param`` is the raw message, whose
    ``*_param`` fields carry the layer's settings in both formats."""
    name: str
    type: str
    bottoms: list
    tops: list
    param: object
    blobs: list = field(default_factory=list)
    unknown_field: tuple = ()   # ("file:line:col", reason) of a field caffe.proto lacks

    def in_test_phase(self):
        """Caffe's include/exclude rules, evaluated for the TEST phase (phase only)."""
        include = list(self.param.include)
        if include:
            return any(not rule.HasField("phase") or rule.phase == TEST_PHASE
                       for rule in include)
        return not any(rule.HasField("phase") and rule.phase == TEST_PHASE
                       for rule in self.param.exclude)


def _v1_type_name(layer, pb):
    enum_name = pb.V1LayerParameter.LayerType.Name(layer.type)
    return V1_TYPE_NAMES.get(enum_name, enum_name)


def layer_views(net, unknown_fields=None):
    """The layers of a NetParameter as LayerViews (new format first, then V1);
    ``unknown_fields``: as returned by `read_network`."""
    pb = load_caffe_pb2()
    unknown = unknown_fields or {}
    views = [LayerView(l.name, l.type, list(l.bottom), list(l.top), l, list(l.blobs),
                       unknown.get(("layer", i), ()))
             for i, l in enumerate(net.layer)]
    views += [LayerView(l.name, _v1_type_name(l, pb), list(l.bottom), list(l.top), l,
                        list(l.blobs), unknown.get(("layers", i), ()))
              for i, l in enumerate(net.layers)]
    return views


def _read_bytes(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise CaffeError("cannot read %s %s: %s" % (what, path, err.strerror)) from None


def read_prototxt(path):
    """Parse a text .prototxt into a NetParameter (see `read_network`)."""
    return read_network(path)[0]


def read_network(path):
    """Parse a text .prototxt into (NetParameter, unknown fields by layer).

    A field caffe.proto does not know is an error outside layers; inside a layer it is only
    noted, as ``{("layer" or "layers", index): ("file:line:column", reason)}``: a layer of a type
    this converter does not support (or one skipped in the TEST phase) may carry its own
    settings, while in a layer that is converted it is a misspelling (``strde: 2``) that must
    not silently give another network (see `LayerView.unknown_field`)."""
    pb = load_caffe_pb2()
    text = _read_bytes(path, "prototxt").decode("utf-8", errors="replace")
    net = pb.NetParameter()
    try:
        text_format.Merge(text, net)
        return net, {}
    except text_format.ParseError:
        net = pb.NetParameter()
    try:
        text_format.Merge(text, net, allow_unknown_field=True)
    except text_format.ParseError as err:
        raise CaffeError("%s: invalid prototxt: %s" % (path, err)) from None
    return net, _unknown_layer_fields(text, path)


# Tokens of the protobuf text format that matter for finding message blocks: comments and
# strings (which may contain braces), identifiers, and the two kinds of message brackets.
_BLOCK_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[A-Za-z_]\w*|\S""")
_LAYER_MESSAGES = {"layer": "LayerParameter", "layers": "V1LayerParameter"}


def _top_level_blocks(text):
    """[(field name, start, end)] of each message at net level: ``text[start:end]`` is the
    text between its brackets."""
    blocks, depth, name, start = [], 0, None, 0
    for match in _BLOCK_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "<"):
            if depth == 0:
                block_name, start = name, match.end()
            depth += 1
        elif token in ("}", ">"):
            depth -= 1
            if depth == 0:
                blocks.append((block_name, start, match.start()))
        elif depth == 0 and (token[0].isalpha() or token[0] == "_"):
            name = token
    return blocks


def _blank(text):
    """Spaces for everything but line breaks: parse errors keep their line and column."""
    return re.sub(r"[^\n]", " ", text)


def _strict_parse_error(text, message):
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as err:
        return err
    return None


def _unknown_layer_fields(text, path):
    pb = load_caffe_pb2()
    layer_blocks = [b for b in _top_level_blocks(text) if b[0] in _LAYER_MESSAGES]
    net_level = text
    for _, start, end in reversed(layer_blocks):
        net_level = net_level[:start] + _blank(net_level[start:end]) + net_level[end:]
    err = _strict_parse_error(net_level, pb.NetParameter())
    if err is not None:
        raise CaffeError("%s: %s" % _located(path, err))
    unknown, counts = {}, {}
    for kind, start, end in layer_blocks:
        index = counts[kind] = counts.get(kind, -1) + 1
        err = _strict_parse_error(_blank(text[:start]) + text[start:end],
                                  getattr(pb, _LAYER_MESSAGES[kind])())
        if err is not None:
            unknown[(kind, index)] = _located(path, err)
    return unknown


def _located(path, parse_error):
    """("file:line:column", reason) of a text_format ParseError."""
    return ("%s:%d:%d" % (path, parse_error.GetLine(), parse_error.GetColumn()),
            str(parse_error).split(" : ", 1)[-1].rstrip("."))


def _parse_binary(message, data, path, what):
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise CaffeError("%s: not a valid %s (truncated or corrupt file): %s"
                         % (path, what, err)) from None
    return message


def read_caffemodel(path):
    """Parse a binary .caffemodel into a NetParameter that holds at least one layer."""
    pb = load_caffe_pb2()
    data = _read_bytes(path, "caffemodel")
    net = _parse_binary(pb.NetParameter(), data, path, "caffemodel")
    if not layer_views(net):
        raise CaffeError("%s: not a valid caffemodel (truncated or corrupt file): it "
                         "contains no layers" % path)
    return net


def read_binaryproto(path):
    """Parse a .binaryproto (one BlobProto, e.g. a mean image)."""
    pb = load_caffe_pb2()
    data = _read_bytes(path, "binaryproto")
    blob = _parse_binary(pb.BlobProto(), data, path, "binaryproto blob")
    if blob_size(blob) == 0:
        raise CaffeError("%s: not a valid binaryproto blob (truncated or corrupt file): it "
                         "holds no values" % path)
    return blob


def blob_shape(blob):
    """Shape of a BlobProto: ``shape.dim`` or the legacy num/channels/height/width."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    return (blob.num, blob.channels, blob.height, blob.width)


def blob_size(blob):
    return len(blob.data) or len(blob.double_data)


def blob_array(blob, where):
    """A BlobProto as a float32 array of its declared shape.  ``where`` names the blob in
    error messages (e.g. "layer 'conv1' blob 0")."""
    values = blob.data if len(blob.data) else blob.double_data
    shape = blob_shape(blob)
    if int(np.prod(shape)) != len(values):
        raise CaffeError("%s: declares shape %s (%d values) but holds %d values"
                         % (where, shape, int(np.prod(shape)), len(values)))
    return np.asarray(values, dtype=np.float32).reshape(shape)


def strip_leading_ones(shape):
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def weights_by_layer(model_net, path):
    """Layer name -> list of float32 arrays, from a parsed caffemodel."""
    weights = {}
    for view in layer_views(model_net):
        if view.blobs:
            weights[view.name] = [blob_array(b, "%s: layer '%s' blob %d" % (path, view.name, i))
                                  for i, b in enumerate(view.blobs)]
    return weights


def declared_inputs(net):
    """(name, shape) pairs declared at net level: ``input`` + ``input_shape`` / ``input_dim``."""
    names = list(net.input)
    if net.input_shape:
        shapes = [tuple(int(d) for d in s.dim) for s in net.input_shape]
    else:
        dims = list(net.input_dim)
        shapes = [tuple(dims[i:i + 4]) for i in range(0, len(dims), 4)]
    if len(shapes) != len(names):
        raise CaffeError("net declares %d input(s) %s but %d input shape(s)"
                         % (len(names), names, len(shapes)))
    return list(zip(names, shapes))
