"""Inference graph pass: eligible 3x3 convolutions run as our Winograd operator.

``use_winograd(sym, {"data": (1, 3, 300, 300)})`` returns a symbol in which every
``Convolution`` that is 3x3, stride 1, dilation 1, one group, float32 NCHW and where
:func:`winograd_pays` says our F(4x4, 3x3) operator beats oneDNN's direct convolution (by
layer shape, and not where it would read a oneDNN convolution's output on a large map) is
replaced by ``WinogradConv3x3`` (operator/winograd_conv.cc):

* a following ``Activation(relu)`` that is the convolution's only reader is fused into it;
* a prediction head's zero-filter padding (``common.zero_padded_filters``: Concat of the
  weight with zeros, convolution, ``slice_axis`` crop), which only helps oneDNN, is undone
  (``graph_edit.undo_head_padding``): the Winograd operator reads the true weight and bias;
* the weight and bias variables are the same nodes, so parameter names and shapes -- and
  every checkpoint -- are unchanged; only the operator nodes differ.

For inference binding only (the operator has no backward; training keeps oneDNN).  The
operator is in our operator library, which the pass registers (``symbol.operators.load``).
Apply the pass when binding, never to a symbol that is saved: checkpoints keep the plain graph.
``MXSSD_WINOGRAD=0`` in the environment (or ``enabled=False``) returns ``sym`` unchanged.
"""
import collections
import copy
import os

import numpy as np

from . import operators
from .graph_edit import Graph, no_bias, undo_head_padding

ENV_SWITCH = "MXSSD_WINOGRAD"
OP_NAME = "WinogradConv3x3"

# Measured (bench/winograd.py and single-thread CPU time per layer, AVX-512 machine, MXNet
# 1.9.1's oneDNN direct convolution against ours): ours is 1.2-2.2x faster from 64 input
# channels on maps of 19x19 and up, 0.3-1.1x on 10x10 and smaller maps, where the
# transforms and short GEMMs cost more than the 4x fewer multiplications save.
MIN_IN_CHANNELS = 64
MIN_OUTPUT_PIXELS = 16 * 16
# Reading a oneDNN convolution's output (oneDNN's own layout) costs our operator extra on
# large maps, where MXNet converts it to NCHW first (measured, 1x1 convolution then ours:
# +10 ms at 64 x 150 x 150, +27 ms at 128 x 150 x 150, +40 ms at 64 x 300 x 300, more than
# the layer saves; nothing at 75 x 75 and below).  In between is unmeasured: counted as
# large.  These ops keep the layout, so the check looks through them.
LAYOUT_PENALTY_ABOVE_PIXELS = 75 * 75
LAYOUT_KEEPING_OPS = ("Activation", "BatchNorm")

# An eligible convolution as the Winograd operator would run it (true filter count of a
# zero-padded head; pad = (pad_h, pad_w); output height and width; relu: a ReLU is fused;
# input_from: the op producing its input, looking through LAYOUT_KEEPING_OPS).
Layer = collections.namedtuple(
    "Layer", "name in_channels out_channels pad out_height out_width relu input_from")


def winograd_pays(layer):
    """Whether our Winograd operator is expected to be faster than oneDNN for ``layer``."""
    pixels = layer.out_height * layer.out_width
    return (layer.in_channels >= MIN_IN_CHANNELS and pixels >= MIN_OUTPUT_PIXELS
            and not (layer.input_from == "Convolution" and pixels > LAYOUT_PENALTY_ABOVE_PIXELS))


def winograd_layers(sym, input_shapes, pays=winograd_pays):
    """Every convolution of ``sym`` that the pass considers, as :class:`Layer` s, each as it
    sees it when the layers before were converted where ``pays``."""
    layers = []

    def record(layer):
        layers.append(layer)
        return pays(layer)
    use_winograd(sym, input_shapes, enabled=True, pays=record)
    return layers


def enabled_by_environment():
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _tuple(text, default):
    if text is None:
        return default
    return tuple(int(v) for v in text.strip("()[] ").replace(" ", "").split(",") if v)


def eligible_convolution(node):
    """A float32 NCHW 3x3 / stride 1 / dilation 1 / one-group Convolution node."""
    if node["op"] != "Convolution":
        return False
    attrs = node.get("attrs", {})
    return (_tuple(attrs.get("kernel"), ()) == (3, 3)
            and _tuple(attrs.get("stride"), (1, 1)) in ((1, 1), (1,))
            and _tuple(attrs.get("dilate"), (1, 1)) in ((1, 1), (1,))
            and int(attrs.get("num_group", "1")) == 1
            and attrs.get("layout", "None") in ("None", "NCHW"))


def _producer(graph, entry, replaced):
    """The op that computes ``entry`` as rewritten so far (``replaced``: see
    ``Graph.symbol``), looking through LAYOUT_KEEPING_OPS."""
    index = entry[0]
    while True:
        while index in replaced:
            index = replaced[index]
        node = graph.nodes[index]
        if node["op"] not in LAYOUT_KEEPING_OPS:
            return node["op"]
        index = node["inputs"][0][0]


def _shapes_and_types(sym, input_shapes):
    """name -> shape and name -> dtype of every argument and internal output (inputs
    float32, as the detector binds them)."""
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(**input_shapes)
    _, out_types, _ = internals.infer_type(**{name: "float32" for name in input_shapes})
    shapes = dict(zip(internals.list_outputs(), out_shapes),
                  **dict(zip(internals.list_arguments(), arg_shapes)))
    types = {name: np.dtype(dtype).name for name, dtype in zip(internals.list_outputs(), out_types)
             if dtype is not None}
    return shapes, types


def use_winograd(sym, input_shapes, enabled=None, pays=winograd_pays):
    """``sym`` with its eligible 3x3 convolutions as ``WinogradConv3x3`` (see the module
    docstring).  ``input_shapes``: name -> shape of the inputs, e.g. ``{"data": (1, 3, 300,
    300)}`` (the decision is per layer shape).  ``enabled``: None = ``$MXSSD_WINOGRAD``
    (default on).  ``pays(layer)``: which :class:`Layer` s to convert."""
    if not (enabled_by_environment() if enabled is None else enabled):
        return sym
    operators.load()
    shapes, types = _shapes_and_types(sym, input_shapes)
    graph = Graph(sym)
    replaced = {}
    for index, node in enumerate(graph.nodes):
        output = node["name"] + "_output"
        if not eligible_convolution(node) or types.get(output) != "float32" \
                or len(shapes.get(output, ())) != 4:
            continue
        rewrite = _winograd_node(graph, index, shapes, pays, replaced)
        if rewrite is None:
            continue
        new_node, last = rewrite
        graph.nodes[index] = new_node
        if last != index:
            replaced[last] = index
    if not any(node["op"] == OP_NAME for node in graph.nodes):
        return sym
    return graph.symbol(replaced)


def _winograd_node(graph, index, shapes, pays, replaced):
    """(replacement node, index of the last node it stands for) for the convolution at
    ``index``, or None where Winograd does not pay."""
    node = graph.nodes[index]
    attrs = node["attrs"]
    out_shape = shapes[node["name"] + "_output"]
    inputs = [list(e) for e in node["inputs"]]
    num_filter, last = int(attrs["num_filter"]), index
    unpadded = undo_head_padding(graph, index)
    if unpadded is not None:
        inputs, num_filter, last = unpadded
    weight_node = graph.nodes[inputs[1][0]]
    if weight_node["op"] != "null":  # a computed weight would be re-transformed every call
        return None
    pad = attrs.get("pad", "(0, 0)")
    relu = graph.only_reader(last, "Activation")
    fuse = relu is not None and graph.nodes[relu]["attrs"].get("act_type") == "relu"
    layer = Layer(node["name"], shapes[weight_node["name"]][1], num_filter,
                  (_tuple(pad, (0, 0)) * 2)[:2], out_shape[2], out_shape[3], fuse,
                  _producer(graph, inputs[0], replaced))
    if not pays(layer):
        return None
    new = copy.deepcopy(node)
    new.update(op=OP_NAME, inputs=inputs, name=graph.nodes[relu if fuse else last]["name"])
    new["attrs"] = {"num_filter": str(num_filter), "pad": pad,
                    "no_bias": str(no_bias(node)), "relu": str(fuse)}
    return new, (relu if fuse else last)
