"""Export an SSD detector to ONNX with MXNet's own exporter (``mx.onnx``, mx2onnx).

mx2onnx converts the backbone and heads; this module registers, through mx2onnx's own
``MXNetGraph.register``, translations for the operators it lacks:

* ``MultiBoxPrior`` / ``_contrib_MultiBoxPrior``: a constant.  Anchors depend only on the
  feature-map size and the attributes, so the exporter evaluates the node itself (the same
  operator the MXNet graph runs) at the export data shape and stores the result.
* ``MultiBoxDetection`` / ``_contrib_MultiBoxDetection``: standard ONNX operators with the
  operator's semantics: decoding with the variances, clipping, the best non-background class
  per anchor (scores below ``threshold`` dropped), the ``nms_topk`` best candidates, greedy
  NMS (``NonMaxSuppression``: per class, or over all classes with ``force_suppress``), and
  an output like MXNet's: (N, A, 6) rows ``[class_id, score, xmin, ymin, xmax, ymax]``, kept
  detections first in score order, then rows of -1.  (MXNet leaves suppressed rows in place
  with class -1; every consumer here drops rows with class < 0, so the kept set is the same.)
* ``MultiBoxTarget`` / ``_contrib_MultiBoxTarget``: training only (it needs the labels), so
  the translation refuses with a message saying to export the test graph.

Two things of mx2onnx 1.9.1 are worked around rather than extended: ``export_model`` stamps
the model with (and checks its graph against) the newest opset the ``onnx`` package knows
while its translations emit opset 13 operators, so the graph is built with
``MXNetGraph.create_onnx_graph_proto``, its premature check skipped, and the model stamped
with :data:`OPSET` and checked in full here; and it has no hook for metadata, so that is
added to the model afterwards.  mx2onnx uses ``onnx.mapping``, which onnx 1.19 removed:
onnx must be < 1.19.

The translations look up the facts they need (anchors, class and anchor counts) in
:data:`_FACTS`, filled for the duration of one export (exports are not thread-safe).
"""
import contextlib
import json
import os

import numpy as np

from config.cli import ONNX_INSTALL, MissingPackage
from symbol import model_io

from .export import deploy_model_spec

# Both ONNX Runtime and OpenVINO run opset 13, the newest mx2onnx (MXNet 1.9.1) writes.
OPSET = 13
IR_VERSION = 7  # the IR version that introduced opset 13; older readers accept it
INPUT_NAME = 'data'
RAW_OUTPUTS = ('cls_prob', 'loc_pred', 'anchors')
INSTALL_HINT = ONNX_INSTALL + '  (onnx>=1.14,<1.19, onnxruntime, openvino)'

PRIOR_OPS = ('MultiBoxPrior', '_contrib_MultiBoxPrior')
DETECTION_OPS = ('MultiBoxDetection', '_contrib_MultiBoxDetection')
TARGET_OPS = ('MultiBoxTarget', '_contrib_MultiBoxTarget')
# MultiBoxDetection's attribute defaults (the same in ours and MXNet's contrib operator).
DETECTION_DEFAULTS = dict(clip='True', threshold='0.01', background_id='0',
                          nms_threshold='0.5', force_suppress='False',
                          variances='(0.1, 0.1, 0.2, 0.2)', nms_topk='-1')

_FACTS = {}  # node name -> what its translation needs, for the export in progress
_registered = False


class OnnxUnavailable(MissingPackage):
    """onnx (or a runtime) is missing or unusable; the message says what to install."""


def require_onnx():
    """The ``onnx`` module, or OnnxUnavailable naming what to install."""
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailable('ONNX export needs the onnx package: %s' % INSTALL_HINT) from None
    try:
        from onnx import mapping  # noqa: F401 (MXNet 1.9.1's exporter imports it)
    except ImportError:
        raise OnnxUnavailable('onnx %s is too new for MXNet 1.9.1\'s exporter (it needs '
                              'onnx.mapping, removed in onnx 1.19): %s'
                              % (onnx.__version__, INSTALL_HINT)) from None
    return onnx


# ---------------------------------------------------------------------------------------------
# Attribute parsing
# ---------------------------------------------------------------------------------------------
def _flag(text):
    return str(text).strip().lower() in ('true', '1')


def _floats(text):
    return [float(v) for v in str(text).strip('()[] ').split(',') if v.strip()]


def detection_settings(attrs):
    """MultiBoxDetection's attributes (strings in the graph JSON) as Python values."""
    a = dict(DETECTION_DEFAULTS, **(attrs or {}))
    return dict(clip=_flag(a['clip']), threshold=float(a['threshold']),
                background_id=int(a['background_id']),
                nms_threshold=float(a['nms_threshold']),
                force_suppress=_flag(a['force_suppress']), variances=_floats(a['variances']),
                nms_topk=int(a['nms_topk']))


# ---------------------------------------------------------------------------------------------
# Facts computed with MXNet before the conversion
# ---------------------------------------------------------------------------------------------
def _output_shapes(symbol, data_shape, params):
    """Shape of every internal output (by its name) and every graph input."""
    internals = symbol.get_internals()
    known = {name: value.shape for name, value in params.items()
             if name in internals.list_inputs()}
    _, shapes, _ = internals.infer_shape(**dict(known, **{INPUT_NAME: data_shape}))
    return dict(zip(internals.list_outputs(), shapes))


def _input_output_names(nodes, node):
    """Internal output names of the inputs of a graph-JSON node."""
    names = []
    for source, index, _ in node['inputs']:
        src = nodes[source]
        if src['op'] == 'null':
            names.append(src['name'])
        else:
            names.append('%s_output' % src['name'] if index == 0 else
                         '%s_output%d' % (src['name'], index))
    return names


def _single_node_value(node, input_shape):
    """Output of one graph node run alone on zeros of ``input_shape`` (anchors depend on the
    feature map's size only)."""
    import mxnet as mx
    graph = {'nodes': [{'op': 'null', 'name': INPUT_NAME, 'inputs': []},
                       {'op': node['op'], 'name': node['name'], 'attrs': node.get('attrs', {}),
                        'inputs': [[0, 0, 0]]}],
             'arg_nodes': [0], 'node_row_ptr': [0, 1, 2], 'heads': [[1, 0, 0]]}
    symbol = mx.sym.load_json(json.dumps(graph))
    return symbol.eval(ctx=mx.cpu(), **{INPUT_NAME: mx.nd.zeros(input_shape)})[0].asnumpy()


def export_facts(symbol, data_shape, params):
    """{node name: facts} for the MultiBox nodes of ``symbol`` at input ``data_shape``
    (N, 3, H, W) with ``params``: the anchors of each prior node, the class and anchor counts
    of each detection node."""
    shapes = _output_shapes(symbol, data_shape, params)
    nodes = json.loads(symbol.tojson())['nodes']
    facts = {}
    for node in nodes:
        if node['op'] in PRIOR_OPS:
            feature_shape = shapes[_input_output_names(nodes, node)[0]]
            facts[node['name']] = {'anchors': _single_node_value(node, feature_shape)}
        elif node['op'] in DETECTION_OPS:
            cls_shape, _, anchor_shape = (shapes[n] for n in _input_output_names(nodes, node))
            facts[node['name']] = {'num_outputs': int(cls_shape[1]),
                                   'num_anchors': int(anchor_shape[1])}
    return facts


@contextlib.contextmanager
def _facts_for(facts):
    _FACTS.clear()
    _FACTS.update(facts)
    try:
        yield
    finally:
        _FACTS.clear()


# ---------------------------------------------------------------------------------------------
# Translations
# ---------------------------------------------------------------------------------------------
class _Subgraph:
    """ONNX nodes of one translation; every tensor name starts with the MXNet node's name."""

    def __init__(self, prefix):
        self.prefix, self.nodes, self._count = prefix, [], 0

    def _name(self, hint):
        self._count += 1
        return '%s_%s%d' % (self.prefix, hint, self._count)

    def const(self, value, dtype=np.float32):
        from onnx import helper, numpy_helper
        name = self._name('const')
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        self.nodes.append(helper.make_node('Constant', [], [name], value=tensor, name=name))
        return name

    def op(self, op_type, inputs, num_outputs=1, output=None, **attrs):
        """Add a node; returns its output name (a list when ``num_outputs`` > 1)."""
        from onnx import helper
        outputs = ([output] if output else
                   [self._name(op_type.lower()) for _ in range(num_outputs)])
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=outputs[0],
                                           **attrs))
        return outputs[0] if num_outputs == 1 else outputs

    def unsqueeze(self, tensor, axis):
        return self.op('Unsqueeze', [tensor, self.const([axis], np.int64)])

    def gather_rows(self, tensor, indices, width):
        """tensor (N, A, width) at indices (N, K) along axis 1 -> (N, K, width)."""
        expanded = self.op('Expand', [self.unsqueeze(indices, 2),
                                      self.const([1, 1, width], np.int64)])
        return self.op('GatherElements', [tensor, expanded], axis=1)


def _input_names(node, kwargs):
    lookup = kwargs['outputs_lookup']
    return [lookup[source][index].name for source, index, _ in node['inputs']]


def convert_prior(node, **kwargs):
    """MultiBoxPrior -> the anchors computed at export time, as a constant."""
    from onnx import helper, numpy_helper
    name = node['name']
    anchors = _FACTS[name]['anchors'].astype(np.float32)
    return [helper.make_node('Constant', [], [name], name=name,
                             value=numpy_helper.from_array(anchors, name + '_anchors'))]


def decode_boxes(g, loc_pred, anchors, variances, clip):
    """Corner boxes (N, A, 4) from offsets (N, 4A) and anchors (A, 4), in the operator's
    order of operations."""
    anchors = anchors.astype(np.float32)
    size = anchors[:, 2:4] - anchors[:, 0:2]
    centre = (anchors[:, 0:2] + anchors[:, 2:4]) / np.float32(2)
    variances = np.asarray(variances, np.float32)
    loc = g.op('Reshape', [loc_pred, g.const([0, -1, 4], np.int64)])
    axis2 = g.const([2], np.int64)
    loc_xy = g.op('Slice', [loc, g.const([0], np.int64), axis2, axis2])
    loc_wh = g.op('Slice', [loc, axis2, g.const([4], np.int64), axis2])
    xy = g.op('Add', [g.op('Mul', [g.op('Mul', [loc_xy, g.const(variances[:2])]),
                                   g.const(size[None])]), g.const(centre[None])])
    half_wh = g.op('Div', [g.op('Mul', [g.op('Exp', [g.op('Mul', [loc_wh,
                                                                  g.const(variances[2:])])]),
                                        g.const(size[None])]), g.const(2.0)])
    boxes = g.op('Concat', [g.op('Sub', [xy, half_wh]), g.op('Add', [xy, half_wh])], axis=2)
    if clip:
        boxes = g.op('Clip', [boxes, g.const(0.0), g.const(1.0)])
    return boxes


def best_classes(g, cls_prob, num_outputs, background_id, threshold):
    """Best non-background class id (counted without the background) and its score per
    anchor, (N, A) each; anchors whose best score is below ``threshold`` get score -1."""
    foreground = [c for c in range(num_outputs) if c != background_id]
    probs = g.op('Gather', [cls_prob, g.const(foreground, np.int64)], axis=1)
    score = g.op('ReduceMax', [probs], axes=[1], keepdims=0)
    class_id = g.op('ArgMax', [probs], axis=1, keepdims=0)  # first of equal maxima, like ours
    candidate = g.op('GreaterOrEqual', [score, g.const(threshold)])
    return class_id, g.op('Where', [candidate, score, g.const(-1.0)])


def suppression_scores(g, class_id, score, num_classes, force_suppress):
    """NonMaxSuppression's (N, classes, K) scores: with force_suppress one class holding every
    candidate; otherwise each candidate's score under its own class only (-1 elsewhere), so
    boxes of different classes never suppress each other."""
    score = g.unsqueeze(score, 1)
    if force_suppress:
        return score
    classes = g.const(np.arange(num_classes).reshape(1, num_classes, 1), np.int64)
    own_class = g.op('Equal', [g.unsqueeze(class_id, 1), classes])
    return g.op('Where', [own_class, score, g.const(-1.0)])


def kept_mask(g, selected, like):
    """1.0 at the (image, candidate) pairs NonMaxSuppression selected, else 0.0; shaped like
    ``like`` (N, K).  A candidate appears under one class only, so pairs are unique."""
    from onnx import helper, TensorProto
    pairs = g.op('Gather', [selected, g.const([0, 2], np.int64)], axis=1)
    one = helper.make_tensor('one', TensorProto.FLOAT, [1], [1.0])
    zero = helper.make_tensor('zero', TensorProto.FLOAT, [1], [0.0])
    ones = g.op('ConstantOfShape', [g.op('Shape', [g.op('Gather', [selected,
                                                                   g.const(0, np.int64)],
                                                        axis=1)])], value=one)
    zeros = g.op('ConstantOfShape', [g.op('Shape', [like])], value=zero)
    return g.op('ScatterND', [zeros, pairs, ones])


def kept_rows_first(g, rows, keep, num_candidates):
    """Rows (N, K, 6) of the kept candidates moved to the front in their (score) order, the
    others set to -1."""
    position = np.arange(num_candidates, dtype=np.float32)[None]
    kept = g.op('Greater', [keep, g.const(0.5)])
    key = g.op('Where', [kept, g.const(position), g.const(position + num_candidates)])
    _, order = g.op('TopK', [key, g.const([num_candidates], np.int64)], num_outputs=2,
                    axis=1, largest=0, sorted=1)
    ordered = g.gather_rows(rows, order, 6)
    ordered_kept = g.op('Greater', [g.op('GatherElements', [keep, order], axis=1),
                                    g.const(0.5)])
    return g.op('Where', [g.unsqueeze(ordered_kept, 2), ordered, g.const(-1.0)])


def convert_detection(node, **kwargs):
    """MultiBoxDetection -> decoding, top-k and NonMaxSuppression in ONNX operators."""
    name = node['name']
    cls_prob, loc_pred, _ = _input_names(node, kwargs)
    facts, s = _FACTS[name], detection_settings(node.get('attrs'))
    if node['op'].startswith('_contrib_'):
        s['background_id'] = 0  # MXNet's operator ignores background_id: class 0 always is
    anchors = _anchor_values(kwargs, node)
    num_anchors, num_classes = facts['num_anchors'], facts['num_outputs'] - 1
    num_candidates = num_anchors if s['nms_topk'] <= 0 else min(s['nms_topk'], num_anchors)
    g = _Subgraph(name)
    boxes = decode_boxes(g, loc_pred, anchors, s['variances'], s['clip'])
    class_id, score = best_classes(g, cls_prob, facts['num_outputs'], s['background_id'],
                                   s['threshold'])
    # TopK is sorted and breaks ties by position: the operator's stable score order.
    top_score, top_index = g.op('TopK', [score, g.const([num_candidates], np.int64)],
                                num_outputs=2, axis=1, largest=1, sorted=1)
    top_boxes = g.gather_rows(boxes, top_index, 4)
    top_class = g.op('GatherElements', [class_id, top_index], axis=1)
    # Non-candidates have score -1: a threshold of -0.5 drops them whether a runtime compares
    # with > or >=, and keeps every candidate (scores >= threshold >= 0).
    selected = g.op('NonMaxSuppression', [
        top_boxes, suppression_scores(g, top_class, top_score, num_classes,
                                      s['force_suppress']),
        g.const([num_candidates], np.int64), g.const([s['nms_threshold']]), g.const([-0.5])])
    keep = kept_mask(g, selected, top_score)
    rows = g.op('Concat', [g.unsqueeze(g.op('Cast', [top_class], to=1), 2),
                           g.unsqueeze(top_score, 2), top_boxes], axis=2)
    rows = kept_rows_first(g, rows, keep, num_candidates)
    pad = np.array([0, 0, 0, 0, num_anchors - num_candidates, 0], np.int64)
    g.op('Pad', [rows, g.const(pad, np.int64), g.const(-1.0)], output=name)
    return g.nodes


def _anchor_values(kwargs, node):
    """The constant anchors (A, 4) feeding a detection node: the exporter can only fold
    anchors that come from MultiBoxPrior nodes (through Flatten/Concat/Reshape)."""
    nodes = kwargs['mx_graph']
    source = nodes[node['inputs'][2][0]]
    parts = _prior_sources(nodes, source)
    if not parts:
        raise ValueError('%s: its anchors do not come from MultiBoxPrior nodes, so they cannot '
                         'be exported as a constant' % node['name'])
    return np.concatenate([_FACTS[p]['anchors'].reshape(-1, 4) for p in parts])


def _prior_sources(nodes, node):
    """MultiBoxPrior nodes behind ``node`` in input order, through shape-only operators."""
    if node['op'] in PRIOR_OPS:
        return [node['name']]
    if node['op'] not in ('Flatten', 'Concat', 'concat', 'Reshape', 'reshape'):
        return []
    found = []
    for source, _, _ in node['inputs']:
        parts = _prior_sources(nodes, nodes[source])
        if not parts:
            return []
        found += parts
    return found


def convert_target(node, **kwargs):
    raise ValueError('%s (%s) is training-only (it needs the labels): export the test graph '
                     '(deploy.py builds it from --network)' % (node['name'], node['op']))


def register_translations():
    """Register the MultiBox translations with mx2onnx (once per process)."""
    global _registered
    if _registered:
        return
    require_onnx()
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    for ops, convert in ((PRIOR_OPS, convert_prior), (DETECTION_OPS, convert_detection),
                         (TARGET_OPS, convert_target)):
        for op in ops:
            MXNetGraph.register(op, OPSET)(convert)
    _registered = True


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------
def raw_symbol(symbol):
    """The graph cut before its detection node: outputs cls_prob (N, C+1, A), loc_pred
    (N, 4A) and anchors (1, A, 4), for runtimes with their own decoding and NMS."""
    import mxnet as mx
    cls_prob, loc_pred, anchors = require_test_graph(symbol).get_children()
    return mx.sym.Group([mx.sym.identity(s, name=n)
                         for s, n in zip((cls_prob, loc_pred, anchors), RAW_OUTPUTS)])


def raw_anchors(path):
    """The anchors (1, A, 4) of a raw ONNX model (:func:`raw_symbol`), computed from their
    constant subgraph (for runtimes that cannot return a constant output, as OpenCV dnn)."""
    onnx = require_onnx()
    from onnx.reference import ReferenceEvaluator
    from onnx.utils import Extractor
    model = onnx.load(path)
    name = RAW_OUTPUTS[2]
    if name not in [output.name for output in model.graph.output]:
        raise ValueError('%s has no %s output (not a raw export: deploy.py --onnx-raw)'
                         % (path, name))
    folded = {tensor.name: tensor for tensor in model.graph.initializer}
    if name in folded:   # constants folded (onnxruntime's optimiser, as detect.onnx_quantize)
        from onnx import numpy_helper
        return numpy_helper.to_array(folded[name])
    return ReferenceEvaluator(Extractor(model).extract_model([], [name])).run(None, {})[0]


def require_test_graph(symbol):
    """``symbol`` when its one output is a MultiBoxDetection node, else ValueError."""
    graph = json.loads(symbol.tojson())
    heads = graph['heads']
    if len(heads) != 1 or graph['nodes'][heads[0][0]]['op'] not in DETECTION_OPS:
        raise ValueError('expected a test graph ending in MultiBoxDetection, got outputs %s '
                         '(a training graph? build the test graph: symbol_factory.get_symbol)'
                         % ', '.join(symbol.list_outputs()))
    return symbol


def model_metadata(data_hw, class_names=None, mean_pixels=None, raw=False, spec=None,
                   extra=None):
    """The ONNX metadata_props: everything a consumer needs to feed the model and read it."""
    meta = {
        'outputs': ('raw: cls_prob (N, C+1, A) softmax with background class 0; '
                              'loc_pred (N, 4A) offsets (x, y, log w, log h) / variances; '
                              'anchors (1, A, 4) [xmin, ymin, xmax, ymax]' if raw else
                              'detection (N, A, 6) rows [class_id, score, xmin, ymin, xmax, '
                              'ymax] (0..1 coordinates), score-sorted, padded with -1'),
        'data_shape': json.dumps([3] + list(data_hw)),
        'input': ('data (N, 3, H, W) float32: RGB, bilinear resize to H x W, mean '
                  'subtracted'),
        'opset': str(OPSET),
    }
    if class_names is not None:
        meta['class_names'] = json.dumps(list(class_names))
    if mean_pixels is not None:
        meta['mean_pixels'] = json.dumps([float(m) for m in mean_pixels])
    if spec is not None:
        meta['model_spec'] = json.dumps(spec, sort_keys=True)
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def _tidy_graph(graph):
    """Drop the weights from the graph inputs (mx2onnx lists them there too: runtimes fold
    constants only for initializers a caller cannot override) and the initializers no node
    reads (mx2onnx leaves some behind)."""
    used = {name for node in graph.node for name in node.input}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)


def _declare_output_shapes(graph, symbol, data_shape, params):
    """Output shapes as MXNet infers them, the batch dimension named 'batch' (mx2onnx's
    dynamic export leaves every dimension unknown)."""
    known = {name: value.shape for name, value in params.items()
             if name in symbol.list_inputs()}
    _, shapes, _ = symbol.infer_shape(**dict(known, **{INPUT_NAME: data_shape}))
    for output, shape in zip(graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for k, size in enumerate(shape):
            dim = dims.add()
            if k == 0:
                dim.dim_param = 'batch'
            else:
                dim.dim_value = size


@contextlib.contextmanager
def _graph_check_deferred(onnx):
    """mx2onnx checks the graph it built against the newest opset the onnx package knows,
    not the one it wrote (opset 13 ReduceMax, Pad... fail that check); the whole model is
    checked against :data:`OPSET` afterwards instead."""
    check_graph = onnx.checker.check_graph
    onnx.checker.check_graph = lambda graph, *args, **kwargs: None
    try:
        yield
    finally:
        onnx.checker.check_graph = check_graph


def build_onnx_model(symbol, arg_params, aux_params, data_hw, raw=False, metadata=None):
    """The checked ModelProto of a test graph (ending in MultiBoxDetection) at input
    (batch, 3, H, W), the batch size left dynamic."""
    onnx = require_onnx()
    from onnx import helper, TensorProto
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    register_translations()
    symbol = raw_symbol(symbol) if raw else require_test_graph(symbol)
    data_shape = (1, 3) + tuple(data_hw)
    params = dict(arg_params, **aux_params)
    with _facts_for(export_facts(symbol, data_shape, params)), _graph_check_deferred(onnx):
        graph = MXNetGraph().create_onnx_graph_proto(
            symbol, params, [data_shape], [TensorProto.FLOAT], opset_version=OPSET,
            dynamic=True, dynamic_input_shapes=[('batch', 3) + tuple(data_hw)])
    _tidy_graph(graph)
    _declare_output_shapes(graph, symbol, data_shape, params)
    model = helper.make_model(graph, producer_name='mxnet-ssd', ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid('', OPSET)])
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(symbol, arg_params, aux_params, data_hw, path, raw=False, class_names=None,
                mean_pixels=None, spec=None, metadata=None):
    """Write the ONNX model of a test graph to ``path``; returns ``path``.

    raw: stop at cls_prob, loc_pred and anchors.  class_names, mean_pixels, spec (the model
    spec dict, stored whole as JSON) and metadata (more key -> value) go into the model's
    metadata_props."""
    onnx = require_onnx()
    meta = model_metadata(data_hw, class_names, mean_pixels, raw, spec, metadata)
    model = build_onnx_model(symbol, arg_params, aux_params, data_hw, raw, meta)
    onnx.save(model, path)
    return path


# ---------------------------------------------------------------------------------------------
# Checkpoints and the command line
# ---------------------------------------------------------------------------------------------
def export_onnx_checkpoint(settings, model_prefix, epoch, spec=None, raw=False, path=None):
    """Write the ONNX model of checkpoint ``<model_prefix>-<epoch>`` built from ``settings``
    (``model_io.open_model``'s; ``settings['network']`` None: the checkpoint's own graph, a
    deploy or converted Caffe model, with its own NMS settings) to ``path`` (default
    ``model_io.onnx_path``); returns the path.  The metadata carry the whole model spec
    (``spec`` with the export's settings, see :func:`exported_spec`)."""
    require_onnx()
    symbol, arg_params, aux_params = model_io.inference_model(model_prefix, epoch, settings)
    path = path or model_io.onnx_path(model_prefix, raw)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return export_onnx(symbol, arg_params, aux_params, model_io.image_hw(settings['data_shape']),
                       path, raw=raw, class_names=settings['class_names'],
                       mean_pixels=settings['mean_pixels'],
                       spec=exported_spec(spec, settings, symbol),
                       metadata={'network': settings['network'] or 'deploy symbol',
                                 'epoch': epoch})


def exported_spec(spec, settings, symbol):
    """The model spec an export describes: the checkpoint's (or one made from ``settings``)
    with the settings the export used; for a saved graph, its own NMS settings."""
    if settings['network'] is not None:
        return deploy_model_spec(spec, settings)
    spec = spec or model_io.saved_graph_spec(symbol, settings['data_shape'])
    if spec is None:
        return None
    return dict(spec, class_names=list(settings['class_names']),
                mean_pixels=[float(m) for m in settings['mean_pixels']], deploy=True)
