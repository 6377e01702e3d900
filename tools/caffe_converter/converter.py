"""Caffe network (+ weights) -> MXNet Symbol and parameters.

``convert(prototxt, caffemodel)`` walks the TEST-phase layers in order, translating each with
the handler from ``layers.LAYER_HANDLERS``; :class:`Converter` is the ``ctx`` those handlers
use.  The result saves as ``<prefix>-symbol.json`` / ``<prefix>-0001.params`` for
``mx.mod.Module`` (the MultiBox operators come from the project's ``symbol`` package, which
must be imported before such a model is loaded).
"""
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np
from tqdm import tqdm

from .caffe_io import (CaffeError, declared_inputs, layer_views, read_caffemodel,
                       read_network, strip_leading_ones, weights_by_layer)
from .layers import (IMAGE_CHANNEL_PARAM_TYPES, IMAGE_CONSUMER_TYPES, IMAGE_PASSTHROUGH_TYPES,
                     IMAGE_SHAPE_READER_TYPES, LAYER_HANDLERS, Blob, mx_name)

LOG = logging.getLogger(__name__)

IMAGE_INPUT_NAME = "data"  # what demo.py / evaluate.py bind the image to
DEFAULT_EPOCH = 1          # the original converter saved epoch 1
DATA_LAYER_TYPES = ("Data", "ImageData", "AnnotatedData", "MemoryData", "HDF5Data",
                    "WindowData", "DummyData", "VideoData")
BGR_CHANNELS = 3
MAX_TENSOR_SIZE = 2 ** 31   # MXNet 1.9 wheels index tensors with int32
CONFIDENT_SCORE = 0.5  # above it a prior can hold one class only, so both runtimes agree


@dataclass
class ConvertedModel:
    symbol: object
    arg_params: dict = field(default_factory=dict)
    aux_params: dict = field(default_factory=dict)
    input_shapes: dict = field(default_factory=dict)

    def missing_params(self):
        """Symbol arguments/aux states that have no converted value."""
        args = [a for a in self.symbol.list_arguments() if a not in self.input_shapes]
        return ([a for a in args if a not in self.arg_params]
                + [a for a in self.symbol.list_auxiliary_states() if a not in self.aux_params])

    def save(self, prefix, epoch=DEFAULT_EPOCH):
        """Write ``<prefix>-symbol.json`` and ``<prefix>-%04d.params``; returns both paths."""
        missing = self.missing_params()
        if missing:
            raise CaffeError("no weights were converted for %s" % ", ".join(missing))
        mx.model.save_checkpoint(prefix, epoch, self.symbol, _to_nd(self.arg_params),
                                 _to_nd(self.aux_params))
        self.save_spec(prefix)
        return "%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch)

    def save_spec(self, prefix):
        """An SSD also gets its model spec ``<prefix>-model.json`` (input size, class count,
        NMS settings), so demo.py / evaluate.py need only --prefix and --epoch."""
        from symbol import model_io
        spec = model_io.saved_graph_spec(self.symbol, self.input_shapes["data"][2:])
        if spec is not None:
            model_io.write_spec(prefix, spec)

    def forward(self, output=None, **inputs):
        """Run the converted network on numpy inputs (keyed by MXNet input name); returns
        the outputs as numpy arrays -- the network's, or the one internal ``output``
        (e.g. "conv1_output")."""
        sym = self.symbol if output is None else self.symbol.get_internals()[output]
        needed = set(sym.list_arguments())
        args = {k: v for k, v in _to_nd(self.arg_params).items() if k in needed}
        args.update({name: mx.nd.array(value) for name, value in inputs.items()})
        aux_names = set(sym.list_auxiliary_states())
        aux = {k: v for k, v in _to_nd(self.aux_params).items() if k in aux_names}
        executor = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
        return [out.asnumpy() for out in executor.forward(is_train=False)]


def mxnet_reason(err):
    """The line of an MXNetError that says what is wrong: the last one, without the frame of
    an operator library's "Extension Traceback" or the "MXNetError: " prefix."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(err).__name__
    reason = re.sub(r"^\[\d+\] \S+\[\d+\]: ", "", reason)
    return re.sub(r"^MXNetError: ", "", reason)


def _to_nd(params):
    return {name: mx.nd.array(value, dtype=np.float32) for name, value in params.items()}


def _multibox_ops():
    """mx.sym after the project's MultiBox operators are registered."""
    try:
        from symbol import operators
        operators.load()
    except Exception as err:  # the operator library may fail to build or load
        raise CaffeError("the project's MultiBox operators are unavailable: "
                         "symbol.operators.load() failed: %s" % err) from None
    for name in ("MultiBoxPrior", "MultiBoxDetection"):
        if not hasattr(mx.sym, name):
            raise CaffeError("the project's operator %s is not registered "
                             "(symbol.operators.load() did not provide it)" % name)
    return mx.sym


class Converter:
    """Conversion state; also the ``ctx`` handed to every layer handler."""

    MAX_ANCHORS_PER_CELL = 64  # kMaxPriorShapes of operator/multibox_params.h

    def __init__(self, net, weights=None, swap_rgb=True, input_scale=1.0, unknown_fields=None):
        """net: parsed prototxt (NetParameter); weights: layer name -> list of arrays, or
        None to build the symbol alone; swap_rgb: reorder the first convolution's input
        channels so the model takes RGB; input_scale: Caffe's transform scale, folded into
        that convolution so the model takes unscaled (mean-subtracted) pixels;
        unknown_fields: from `read_network`, refused in the layers that are converted."""
        self.weights = weights
        self.swap_rgb = swap_rgb
        self.input_scale = float(input_scale)
        self.declared_inputs = declared_inputs(net)
        self.layers = [view for view in layer_views(net, unknown_fields) if view.in_test_phase()]
        self.blobs = {}
        self.model = ConvertedModel(symbol=None)
        self.swapped_layers = []
        self._ops = None
        self._consumers, self._top_versions, self._outputs = self._trace_blobs()
        self._fused = self._plan_batch_norm_fusion()

    # ------------------------------------------------------------------ public

    def convert(self, progress=False):
        # A fresh name manager numbers any auto-named node from zero, so converting the same
        # network twice in one process gives identical JSON.
        with mx.name.NameManager():
            for name, shape in self.declared_inputs:
                self._add_input(name, shape)
            for layer in tqdm(self.layers, desc="converting", unit="layer", disable=not progress):
                self._convert_layer(layer)
            self.model.symbol = self._output_symbol()
        image_shape = self.model.input_shapes.get(IMAGE_INPUT_NAME, ())
        has_bgr_image = len(image_shape) == 4 and image_shape[1] == BGR_CHANNELS
        if self.swap_rgb and has_bgr_image and self.weights is not None and not self.swapped_layers:
            LOG.warning("no convolution reads the 3-channel image: nothing was swapped BGR->RGB")
        return self.model

    # ------------------------------------------------------------------ ctx API for handlers

    @property
    def ops(self):
        if self._ops is None:
            self._ops = _multibox_ops()
        return self._ops

    def fail(self, layer, message):
        raise CaffeError("layer '%s' (%s): %s" % (layer.name, layer.type, message))

    def shape_of(self, sym):
        known = {k: v for k, v in self.model.input_shapes.items() if k in sym.list_arguments()}
        _, out_shapes, _ = sym.infer_shape(**known)
        if not out_shapes or out_shapes[0] is None:
            raise CaffeError("cannot infer the shape of %s" % sym.name)
        return tuple(out_shapes[0])

    def layer_blobs(self, layer, count):
        """The layer's ``count`` caffemodel blobs, or None when converting the symbol alone.
        Like Caffe, a different number of blobs is an error (e.g. a bias blob although the
        prototxt says bias_term: false)."""
        if self.weights is None:
            return None
        blobs = self.weights.get(layer.name)
        if blobs is None:
            self.fail(layer, "has no weights in the caffemodel")
        if len(blobs) != count:
            self.fail(layer, "has %d blob(s) in the caffemodel but the prototxt implies %d"
                      % (len(blobs), count))
        return blobs

    def check_blob(self, layer, index, array, expected):
        """The blob reshaped to ``expected``; legacy 4-D shapes padded with leading 1s pass."""
        expected = tuple(int(d) for d in expected)
        if array.shape == expected:
            return array
        if strip_leading_ones(array.shape) == strip_leading_ones(expected):
            return array.reshape(expected)
        self.fail(layer, "blob %d has shape %s in the caffemodel but the prototxt implies %s"
                  % (index, array.shape, expected))

    def add_arg(self, name, value):
        self.model.arg_params[name] = np.asarray(value, dtype=np.float32)

    def add_aux(self, name, value):
        self.model.aux_params[name] = np.asarray(value, dtype=np.float32)

    def fused_scale(self, batch_norm_layer):
        return self._fused.get(batch_norm_layer.name)

    def is_fused_scale(self, scale_layer):
        return any(s.name == scale_layer.name for s in self._fused.values())

    def adapt_to_rgb_input(self, layer, weight, channel_axis, in_channels, group):
        """Fold the input scale and the BGR->RGB swap into weights that read the image;
        ``channel_axis`` is the weight axis indexing the image channels."""
        weight = weight * np.float32(self.input_scale)
        if self.swap_rgb and in_channels == BGR_CHANNELS:
            if group != 1:
                self.fail(layer, "a grouped convolution on the image cannot absorb the "
                          "BGR->RGB swap; convert with --no-swap-rgb")
            weight = np.flip(weight, axis=channel_axis).copy()
            self.swapped_layers.append(layer.name)
        return weight

    def adapt_channel_params(self, layer, *arrays):
        """Per-channel parameters applied to the image follow its channel order."""
        if self.input_scale != 1:
            self.fail(layer, "reads the unscaled image, so --input-scale cannot be folded "
                      "into a later convolution")
        if self.swap_rgb and len(arrays[0]) == BGR_CHANNELS:
            return tuple(a[::-1].copy() for a in arrays)
        return arrays

    def warn_detection_semantics(self, layer, p):
        notes = []
        threshold = p.confidence_threshold if p.HasField("confidence_threshold") else 0.0
        if threshold < CONFIDENT_SCORE:
            notes.append("confidence_threshold %g < %g: Caffe may keep several classes per "
                         "prior, MultiBoxDetection keeps each prior's best class"
                         % (threshold, CONFIDENT_SCORE))
        if p.keep_top_k >= 0:
            notes.append("keep_top_k %d is not applied (all surviving detections are "
                         "returned, sorted by score)" % p.keep_top_k)
        if p.nms_param.HasField("top_k"):
            notes.append("top_k %d counts candidates of all classes together, not per class"
                         % p.nms_param.top_k)
        if notes:
            LOG.warning("layer '%s': %s. Detections scoring >= %g match Caffe's while fewer "
                        "than top_k/keep_top_k.", layer.name, "; ".join(notes), CONFIDENT_SCORE)

    # ------------------------------------------------------------------ internals

    def _trace_blobs(self):
        """Consumers of each blob version (in-place layers make new versions of a name)
        and the versions no layer consumes, i.e. the network outputs."""
        version = {name: 0 for name, _ in self.declared_inputs}
        consumers = defaultdict(list)
        top_versions = []
        for index, layer in enumerate(self.layers):
            for name in layer.bottoms:
                consumers[(name, version.get(name, 0))].append(index)
            for name in layer.tops:
                version[name] = version.get(name, -1) + 1
            top_versions.append([(name, version[name]) for name in layer.tops])
        outputs = [name for layer, tops in zip(self.layers, top_versions) if layer.type != "Input"
                   for name, v in tops if not consumers[(name, v)]]
        return consumers, top_versions, list(dict.fromkeys(outputs))

    def _plan_batch_norm_fusion(self):
        """BatchNorm layers whose output feeds exactly one per-channel Scale: layer -> Scale."""
        fused = {}
        for index, (layer, follower) in enumerate(zip(self.layers, self.layers[1:])):
            if (layer.type != "BatchNorm" or follower.type != "Scale"
                    or follower.bottoms != layer.tops[:1]):
                continue
            p = follower.param.scale_param
            only_reader = self._consumers[self._top_versions[index][0]] == [index + 1]
            if p.axis == 1 and p.num_axes == 1 and only_reader:
                fused[layer.name] = follower
        return fused

    def _add_input(self, caffe_name, shape):
        first = not self.model.input_shapes
        name = IMAGE_INPUT_NAME if first else mx_name(caffe_name)
        shape = tuple(int(d) for d in shape)
        # checked here: MXNet refuses an input of 2^31 values with a bare Exception
        if not shape or min(shape) < 1 or math.prod(shape) >= MAX_TENSOR_SIZE:
            raise CaffeError("input '%s' has shape %s: each dimension must be >= 1 and the "
                             "tensor hold fewer than 2^31 values (MXNet's limit)"
                             % (caffe_name, shape))
        self.model.input_shapes[name] = shape
        is_image = first and len(shape) == 4 and (shape[1] == BGR_CHANNELS
                                                  or self.input_scale != 1)
        self.blobs[caffe_name] = Blob(mx.sym.Variable(name), shape, image=is_image)

    def _add_input_layer(self, layer):
        shapes = [tuple(int(d) for d in s.dim) for s in layer.param.input_param.shape]
        if len(shapes) == 1:
            shapes *= len(layer.tops)
        if len(shapes) != len(layer.tops):
            self.fail(layer, "has %d tops but %d shapes" % (len(layer.tops), len(shapes)))
        for top, shape in zip(layer.tops, shapes):
            self._add_input(top, shape)

    def _bottom(self, layer, name):
        if name not in self.blobs:
            self.fail(layer, "bottom '%s' is not produced by any earlier layer or input" % name)
        return self.blobs[name]

    def _check_image_consumer(self, layer, bottoms):
        allowed = (IMAGE_PASSTHROUGH_TYPES + IMAGE_CHANNEL_PARAM_TYPES + IMAGE_CONSUMER_TYPES
                   + IMAGE_SHAPE_READER_TYPES)
        adapting = self.swap_rgb or self.input_scale != 1
        if adapting and layer.type not in allowed and any(b.image for b in bottoms):
            self.fail(layer, "reads the input image directly; the BGR->RGB swap and input "
                      "scale can only be folded into a Convolution/Deconvolution (reached "
                      "through %s); convert with --no-swap-rgb and --input-scale 1"
                      % "/".join(IMAGE_PASSTHROUGH_TYPES + IMAGE_CHANNEL_PARAM_TYPES))

    def _convert_layer(self, layer):
        if layer.type == "Input":
            self._refuse_unknown_field(layer)
            self._add_input_layer(layer)
            return
        if layer.type in DATA_LAYER_TYPES:
            self.fail(layer, "data layers are not converted; use a deploy prototxt whose "
                      "input is an Input layer or input/input_shape")
        handler = LAYER_HANDLERS.get(layer.type)
        if handler is None:
            raise CaffeError("layer '%s' has unsupported type '%s' (supported: %s)"
                             % (layer.name, layer.type, ", ".join(sorted(LAYER_HANDLERS))))
        self._refuse_unknown_field(layer)
        bottoms = [self._bottom(layer, name) for name in layer.bottoms]
        self._check_image_consumer(layer, bottoms)
        try:
            outputs = handler(self, layer, bottoms)
        except mx.base.MXNetError as err:
            self.fail(layer, "MXNet rejects it: %s" % mxnet_reason(err))
        if len(outputs) != len(layer.tops):
            self.fail(layer, "produces %d output(s) but declares %d top(s)"
                      % (len(outputs), len(layer.tops)))
        for top, output in zip(layer.tops, outputs):
            if math.prod(output.shape) >= MAX_TENSOR_SIZE:
                self.fail(layer, "its output '%s' %s holds 2^31 values or more (MXNet's limit)"
                          % (top, tuple(output.shape)))
        self.blobs.update(zip(layer.tops, outputs))

    def _refuse_unknown_field(self, layer):
        # converting without the setting would give a different network than Caffe's
        if layer.unknown_field:
            where, reason = layer.unknown_field
            raise CaffeError("%s: layer '%s' (%s): %s (misspelt, or not a setting of this "
                             "layer type)" % (where, layer.name, layer.type, reason))

    def _output_symbol(self):
        if not self._outputs:
            raise CaffeError("the network has no output: every blob is consumed")
        syms = [self.blobs[name].sym for name in self._outputs]
        return syms[0] if len(syms) == 1 else mx.sym.Group(syms)


def convert(prototxt, caffemodel=None, swap_rgb=True, input_scale=1.0, progress=False):
    """Convert files; without ``caffemodel`` only the symbol is built (no parameters)."""
    net, unknown_fields = read_network(prototxt)
    weights = None
    if caffemodel is not None:
        weights = weights_by_layer(read_caffemodel(caffemodel), caffemodel)
    converter = Converter(net, weights, swap_rgb=swap_rgb, input_scale=input_scale,
                          unknown_fields=unknown_fields)
    return converter.convert(progress=progress)
