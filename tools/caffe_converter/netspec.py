"""Writes Caffe models: a text .prototxt plus a binary .caffemodel holding given weights.

Used by the tests to build models that both OpenCV's Caffe importer and this converter read,
and usable to hand-make small Caffe fixtures.  Layers are given as in a prototxt::

    net = NetWriter("tiny")
    net.input("data", (1, 3, 32, 32))
    net.add("Convolution", "conv1", ["data"], blobs=[w, b],
            convolution_param=dict(num_output=8, kernel_size=3, pad=1))
    net.save("tiny.prototxt", "tiny.caffemodel")
"""
import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from .caffe_io import V1_TYPE_NAMES
from .proto import load_caffe_pb2

V1_TYPES_BY_NAME = {name: enum for enum, name in V1_TYPE_NAMES.items()}
INPUT_STYLES = ("layer", "input_shape", "input_dim")


def _is_repeated(field):
    # protobuf >= 5.26 has is_repeated and later removed `label`; older ones only have label
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def fill_message(message, values):
    """Set fields from a dict as a prototxt would: nested dicts for messages, enum names as
    strings, and a single value accepted for a repeated field."""
    for key, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[key]
        repeated = _is_repeated(field)
        items = list(value) if repeated and isinstance(value, (list, tuple)) else [value]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if repeated:
                for item in items:
                    fill_message(getattr(message, key).add(), item)
            else:
                fill_message(getattr(message, key), value)
            continue
        if field.type == FieldDescriptor.TYPE_ENUM:
            items = [field.enum_type.values_by_name[v].number if isinstance(v, str) else v
                     for v in items]
        if repeated:
            getattr(message, key).extend(items)
        else:
            setattr(message, key, items[0])
    return message


def _varint(value):
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(field_number, payload):
    wire_type = 2
    return _varint(field_number << 3 | wire_type) + _varint(len(payload)) + payload


def fill_blob(blob, array):
    """Store an array in a BlobProto (shape + packed float data).

    The wire bytes are assembled here and parsed by protobuf's C code: appending tens of
    millions of floats through the Python API takes minutes for a VGG-sized model.
    """
    array = np.ascontiguousarray(array, dtype="<f4")
    dims = b"".join(_varint(int(d)) for d in array.shape)
    shape = _length_delimited(1, dims)                    # BlobShape.dim, packed
    blob.MergeFromString(_length_delimited(7, shape)      # BlobProto.shape
                         + _length_delimited(5, array.tobytes()))  # BlobProto.data, packed


class NetWriter:
    """A network under construction; ``v1=True`` writes the old ``layers`` format."""

    def __init__(self, name="net", v1=False):
        self.pb = load_caffe_pb2()
        self.net = self.pb.NetParameter(name=name)
        self.v1 = v1
        self._weights = []  # (layer message, arrays), filled into a copy when saving

    def input(self, name, shape, style="layer"):
        """Declare an input blob: an ``Input`` layer, or net-level input + input_shape /
        input_dim (the only styles the V1 format has)."""
        if style not in INPUT_STYLES:
            raise ValueError("style must be one of %s" % (INPUT_STYLES,))
        if style == "layer" and not self.v1:
            return self.add("Input", name, [], input_param={"shape": [{"dim": list(shape)}]})
        self.net.input.append(name)
        if style == "input_dim" or self.v1:
            self.net.input_dim.extend(shape)
        else:
            self.net.input_shape.add().dim.extend(shape)
        return name

    def add(self, layer_type, name, bottoms, tops=None, blobs=(), **params):
        """Append a layer; ``params`` are its ``*_param`` messages as dicts.  Returns the
        first top (by default named like the layer)."""
        tops = list(tops) if tops is not None else [name]
        spec = {"name": name, "bottom": list(bottoms), "top": tops, **params}
        spec["type"] = V1_TYPES_BY_NAME[layer_type] if self.v1 else layer_type
        fill_message(self._layers().add(), spec)
        if len(blobs):
            self._weights.append((len(self._layers()) - 1, [np.asarray(b) for b in blobs]))
        return tops[0] if tops else name

    def _layers(self):
        return self.net.layers if self.v1 else self.net.layer

    def prototxt(self):
        return text_format.MessageToString(self.net)

    def caffemodel(self):
        """Serialized NetParameter with every layer's blobs, as Caffe saves it."""
        model = self.pb.NetParameter()
        model.CopyFrom(self.net)
        layers = model.layers if self.v1 else model.layer
        for index, arrays in self._weights:
            for array in arrays:
                fill_blob(layers[index].blobs.add(), array)
        return model.SerializeToString()

    def save(self, prototxt_path, caffemodel_path=None):
        with open(prototxt_path, "w") as f:
            f.write(self.prototxt())
        if caffemodel_path is not None:
            with open(caffemodel_path, "wb") as f:
                f.write(self.caffemodel())
        return prototxt_path, caffemodel_path
