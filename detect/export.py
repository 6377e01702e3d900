"""Deploy models: the test graph (detection output only) with the parameters it uses, saved
as ``<dir>/deploy_<name>-symbol.json`` / ``-<epoch>.params``.

A portable deploy model names MXNet's built-in ``_contrib_MultiBox*`` operators instead of the
project's own, so it runs on stock MXNet (any language binding, model servers) without our
operator library.  Both implement the same operator with the same attribute names and the
same results, so the rename is all it takes.
"""
import json
import os

import mxnet as mx

from dataset.iterator import image_hw
from evaluate.evaluate_net import check_params

from .detector import checkpoint_paths, load_model

# Our operator -> MXNet's built-in twin.
BUILTIN_OPERATORS = {
    'MultiBoxPrior': '_contrib_MultiBoxPrior',
    'MultiBoxTarget': '_contrib_MultiBoxTarget',
    'MultiBoxDetection': '_contrib_MultiBoxDetection',
}
DEPLOY_TAG = 'deploy_'


def deploy_prefix(model_prefix):
    """'model/ssd_mobilenet_0.25_300' -> 'model/deploy_ssd_mobilenet_0.25_300'."""
    folder, name = os.path.split(model_prefix)
    return os.path.join(folder, DEPLOY_TAG + name)


def operators_of(symbol):
    return {node['op'] for node in json.loads(symbol.tojson())['nodes']}


def with_builtin_operators(symbol):
    """The same graph with the project's MultiBox operators replaced by MXNet's built-in
    ``_contrib_`` ones (attributes unchanged; MXNet checks them when the graph is loaded)."""
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        node['op'] = BUILTIN_OPERATORS.get(node['op'], node['op'])
    return mx.sym.load_json(json.dumps(graph))


def used_params(symbol, arg_params, aux_params):
    """Only the parameters the graph reads (a training checkpoint also holds none else, but
    a finetuned one may carry leftovers)."""
    args, auxs = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
    return ({k: v for k, v in arg_params.items() if k in args},
            {k: v for k, v in aux_params.items() if k in auxs})


def checked_test_model(network, model_prefix, epoch, data_shape, num_classes, nms_thresh=0.45,
                       force_nms=True, nms_topk=400):
    """(test symbol, arg_params, aux_params) of checkpoint ``<model_prefix>-<epoch>``, the
    parameters checked against the network built from ``network``, ``data_shape`` and
    ``num_classes``, so a mismatch names the parameter."""
    from symbol.symbol_factory import get_symbol
    symbol = get_symbol(network, data_shape, num_classes, nms_thresh=nms_thresh,
                        force_suppress=force_nms, nms_topk=nms_topk)
    symbol, arg_params, aux_params = load_model(model_prefix, epoch, symbol)
    data_desc = mx.io.DataDesc('data', (1, 3) + tuple(image_hw(data_shape)))
    check_params(symbol, data_desc, arg_params, aux_params,
                 checkpoint_paths(model_prefix, epoch)[1])
    return symbol, arg_params, aux_params


def export_deploy_model(network, model_prefix, epoch, data_shape, num_classes,
                        nms_thresh=0.45, force_nms=True, nms_topk=400, portable=True,
                        output_prefix=None):
    """Write the deploy model of checkpoint ``<model_prefix>-<epoch>``; returns the paths
    (symbol file, params file).  The parameters are checked against the network built from
    ``network``, ``data_shape`` and ``num_classes`` first (:func:`checked_test_model`)."""
    symbol, arg_params, aux_params = checked_test_model(
        network, model_prefix, epoch, data_shape, num_classes, nms_thresh, force_nms, nms_topk)
    if portable:
        symbol = with_builtin_operators(symbol)
    output_prefix = output_prefix or deploy_prefix(model_prefix)
    os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
    arg_params, aux_params = used_params(symbol, arg_params, aux_params)
    mx.model.save_checkpoint(output_prefix, epoch, symbol, arg_params, aux_params)
    return checkpoint_paths(output_prefix, epoch)
