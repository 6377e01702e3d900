"""Deploy models: the test graph (detection output only) with the parameters it uses and the
model spec, saved as ``<dir>/deploy_<name>-symbol.json`` / ``-<epoch>.params`` /
``-model.json``.

A portable deploy model names MXNet's built-in ``_contrib_MultiBox*`` operators instead of the
project's own, so it runs on stock MXNet (any language binding, model servers) without our
operator library.  Both implement the same operator with the same attribute names and the
same results, so the rename is all it takes.
"""
import json
import os

import mxnet as mx

from symbol import model_io

# Our operator -> MXNet's built-in twin.
BUILTIN_OPERATORS = {
    'MultiBoxPrior': '_contrib_MultiBoxPrior',
    'MultiBoxTarget': '_contrib_MultiBoxTarget',
    'MultiBoxDetection': '_contrib_MultiBoxDetection',
}


def with_builtin_operators(symbol):
    """The same graph with the project's MultiBox operators replaced by MXNet's built-in
    ``_contrib_`` ones (attributes unchanged; MXNet checks them when the graph is loaded)."""
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        node['op'] = BUILTIN_OPERATORS.get(node['op'], node['op'])
    return mx.sym.load_json(json.dumps(graph))


def export_deploy_model(settings, model_prefix, epoch, portable=True, output_prefix=None,
                        spec=None):
    """Write the deploy model of checkpoint ``<model_prefix>-<epoch>`` built from
    ``settings`` (``model_io.open_model``'s); returns the paths (symbol file, params file).
    The parameters are checked against that network first, so a mismatch names the
    parameter.  ``spec``: the checkpoint's model spec, copied with the deploy settings.
    Never replaces the checkpoint's own files."""
    output_prefix = output_prefix or model_io.deploy_prefix(model_prefix)
    if os.path.abspath(output_prefix) == os.path.abspath(model_prefix):
        raise model_io.ModelError('the output prefix %s is the checkpoint itself: exporting '
                                  'would replace its training symbol %s; choose another '
                                  '--output-prefix' % (output_prefix,
                                                       model_io.symbol_path(model_prefix)))
    symbol, arg_params, aux_params = model_io.inference_model(model_prefix, epoch, settings)
    if portable:
        symbol = with_builtin_operators(symbol)
    deploy_spec = deploy_model_spec(spec, settings)
    return model_io.export_model(output_prefix, epoch, symbol, arg_params, aux_params,
                                 deploy_spec)


def deploy_model_spec(spec, settings):
    """The checkpoint's spec (or one made from ``settings``) with the settings baked in."""
    if spec is None:
        spec = model_io.make_spec(settings['network'], settings['data_shape'],
                                  settings['num_classes'], settings['class_names'],
                                  settings['mean_pixels'],
                                  preset_overrides=settings['preset_overrides'])
    baked = {key: settings[key] for key in ('nms_thresh', 'nms_topk', 'force_nms',
                                            'class_names', 'mean_pixels')}
    baked['data_shape'] = list(model_io.image_hw(settings['data_shape']))
    return dict(spec, **model_io.jsonable(baked), deploy=True)
