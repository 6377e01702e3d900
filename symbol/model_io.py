"""Model files, in one place: naming, the model spec, loading, binding and exporting.

A checkpoint ``P`` is ``P-symbol.json``, ``P-NNNN.params`` (MXNet's layout, ``arg:``/``aux:``
keys) and, for models trained or converted by this project, ``P-model.json``: the model spec,
what the network is (network name, data shape, classes, mean pixels, resolved preset, NMS
settings, variances, label width).  The scripts read every model setting from the spec; explicit
flags override it (``resolve_settings``).  Checkpoints without a spec (released mxnet-ssd models,
older checkpoints) keep working through the flags.

Every file is written under a temporary name and renamed into place, so a process killed at any
moment leaves the previous complete file or the new one, never a truncated file.
"""
import glob
import importlib.metadata
import json
import logging
import os
import re

import mxnet as mx

from config import defaults

from .winograd import use_winograd

logger = logging.getLogger(__name__)

SPEC_FORMAT = 'mxnet-ssd-model'
SPEC_VERSION = 1
DEPLOY_TAG = 'deploy_'
PARTIAL_SUFFIX = '.partial'
DETECTION_OUTPUT = 'detection_output'
_PARAMS_NAME = re.compile(r'-(\d{4,})\.params$')
# Spec fields a command-line flag may set; the others describe the trained weights.
SETTINGS = ('network', 'data_shape', 'num_classes', 'class_names', 'mean_pixels', 'nms_thresh',
            'nms_topk', 'force_nms', 'preset_overrides')


class ModelError(ValueError):
    """Model files are missing, unreadable or do not fit the network; the message names them."""


# ------------------------------------------------------------------------------------ naming

def shape_tag(data_shape):
    """'300' for a square input, '256x320' (height x width) otherwise."""
    height, width = image_hw(data_shape)
    return str(height) if height == width else '%dx%d' % (height, width)


def image_hw(data_shape):
    """(height, width) from an int, (height, width) or (3, height, width)."""
    if isinstance(data_shape, int):
        return data_shape, data_shape
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 3 and shape[0] == 3:
        shape = shape[1:]
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2:
        raise ValueError('data_shape must be an int, (H, W) or (3, H, W); got %r' % (data_shape,))
    return shape


def expand_prefix(prefix, network, data_shape):
    """A prefix ending in '_' names a model by network and input size (train.py writes it so):
    'model/ssd_' -> 'model/ssd_mobilenet_0.25_300'."""
    if prefix.endswith('_') and network:
        return '%s%s_%s' % (prefix, network, shape_tag(data_shape))
    return prefix


def deploy_prefix(model_prefix):
    """'model/ssd_mobilenet_0.25_300' -> 'model/deploy_ssd_mobilenet_0.25_300'."""
    folder, name = os.path.split(model_prefix)
    return os.path.join(folder, DEPLOY_TAG + name)


def onnx_path(prefix, raw=False):
    """The ONNX model beside a checkpoint's deploy model (deploy.py --format onnx writes it,
    --runtime reads it): 'model/ssd_x' -> 'model/deploy_ssd_x.onnx' ('-raw.onnx' for the raw
    variant).  A prefix already naming a deploy model keeps its name; a .onnx path is kept."""
    if prefix.endswith('.onnx'):
        return prefix
    if not os.path.basename(prefix).startswith(DEPLOY_TAG):
        prefix = deploy_prefix(prefix)
    return onnx_file(prefix, raw)


def onnx_file(output_prefix, raw=False):
    """The ONNX model written to exactly ``output_prefix`` (deploy.py --output-prefix)."""
    return output_prefix + ('-raw.onnx' if raw else '.onnx')


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def states_path(prefix, epoch):
    return '%s-%04d.states' % (prefix, epoch)


def spec_path(prefix):
    return '%s-model.json' % prefix


def saved_epochs(prefix):
    """Epochs of the complete checkpoints of ``prefix``, ascending."""
    epochs = []
    for path in glob.glob(glob.escape(prefix) + '-*.params'):
        found = _PARAMS_NAME.search(path)
        if found and path == params_path(prefix, int(found.group(1))):
            epochs.append(int(found.group(1)))
    return sorted(epochs)


def resolve_epoch(prefix, epoch):
    """``epoch``, or when None the newest one saved with ``prefix``."""
    if epoch is not None:
        return int(epoch)
    epochs = saved_epochs(prefix)
    if not epochs:
        raise ModelError('no checkpoint found: expected %s (check --prefix, --network and '
                         '--data-shape)' % params_path(prefix, 0).replace('-0000', '-NNNN'))
    return epochs[-1]


def require_files(paths, prefix):
    """Raise ModelError naming every missing path and the epochs that do exist."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if not missing:
        return
    epochs = saved_epochs(prefix)
    hint = ('epochs found for this prefix: %s' % ', '.join(map(str, epochs)) if epochs else
            'no checkpoint at all with this prefix (check --prefix, --network, --data-shape)')
    raise ModelError('model file(s) not found: %s; %s' % (', '.join(missing), hint))


# ------------------------------------------------------------------------------ atomic writes

def atomic_write(path, write):
    """Call ``write(temporary_path)``, flush it to disk and rename it to ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + PARTIAL_SUFFIX
    write(partial)
    with open(partial, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def save_params_file(path, arg_params, aux_params):
    """``arg_params``/``aux_params`` (name -> NDArray) in MXNet's checkpoint layout."""
    arrays = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    arrays.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    atomic_write(path, lambda tmp: mx.nd.save(tmp, arrays))


def write_spec(prefix, spec):
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(spec, f, indent=1, sort_keys=True)
            f.write('\n')
    atomic_write(spec_path(prefix), write)


# ---------------------------------------------------------------------------------- the spec

def project_version():
    """The installed mxnet-ssd's version (setup.py), for the spec's record."""
    try:
        return importlib.metadata.version('mxnet-ssd')
    except importlib.metadata.PackageNotFoundError:   # run from a checkout, not installed
        return 'unknown'


def make_spec(network, data_shape, num_classes, class_names=None, mean_pixels=None,
              nms_thresh=None, nms_topk=None, force_nms=None, preset_overrides=None,
              label_width=None):
    """The model spec of a network of this project (see the module docstring); left-out
    settings take the project defaults."""
    from .symbol_factory import get_config
    overrides = dict(preset_overrides or {})
    height, width = image_hw(data_shape)
    class_names = list(class_names or ['class_%d' % i for i in range(num_classes)])
    return {
        'format': SPEC_FORMAT, 'format_version': SPEC_VERSION,
        'project_version': project_version(),
        'network': network, 'data_shape': [height, width], 'num_classes': int(num_classes),
        'class_names': class_names,
        'mean_pixels': [float(m) for m in (mean_pixels or defaults.MEAN_PIXELS)],
        'pixel_scale': defaults.PIXEL_SCALE,
        'preset': jsonable(get_config(network, (height, width), **overrides)),
        'preset_overrides': overrides,
        'nms_thresh': defaults.NMS_THRESH if nms_thresh is None else float(nms_thresh),
        'nms_topk': defaults.NMS_TOPK if nms_topk is None else int(nms_topk),
        'force_nms': defaults.FORCE_NMS if force_nms is None else bool(force_nms),
        'variances': list(defaults.VARIANCES),
        'label_width': defaults.LABEL_WIDTH if label_width is None else int(label_width),
    }


def saved_graph_spec(symbol, data_shape, class_names=None, mean_pixels=None):
    """The spec of a model whose saved graph is its inference graph (a converted Caffe SSD):
    ``network`` None, class count read from the detection operator's class input, the NMS
    settings it was saved with; None when the graph has no MultiBoxDetection."""
    nodes = json.loads(symbol.tojson())['nodes']
    detections = [n for n in nodes if n['op'].endswith('MultiBoxDetection')]
    if not detections:
        return None
    node, attrs = detections[0], detections[0].get('attrs', {})
    height, width = image_hw(data_shape)
    cls_prob = symbol.get_internals()[nodes[node['inputs'][0][0]]['name'] + '_output']
    num_classes = cls_prob.infer_shape(data=(1, 3, height, width))[1][0][1] - 1
    return {
        'format': SPEC_FORMAT, 'format_version': SPEC_VERSION,
        'project_version': project_version(), 'deploy': True,
        'network': None, 'data_shape': [height, width], 'num_classes': int(num_classes),
        'class_names': list(class_names or ['class_%d' % i for i in range(num_classes)]),
        'mean_pixels': [float(m) for m in (mean_pixels or defaults.MEAN_PIXELS)],
        'pixel_scale': defaults.PIXEL_SCALE, 'preset': None, 'preset_overrides': {},
        'nms_thresh': float(attrs.get('nms_threshold', defaults.NMS_THRESH)),
        'nms_topk': int(attrs.get('nms_topk', defaults.NMS_TOPK)),
        'force_nms': attrs.get('force_suppress', str(defaults.FORCE_NMS)).lower() in ('true', '1'),
        'variances': [float(v) for v in attrs.get('variances', '()').strip('()[]').split(',')
                      if v.strip()] or list(defaults.VARIANCES),
        'label_width': defaults.EVAL_LABEL_WIDTH,
    }


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def read_spec(prefix):
    """The spec dict of ``prefix``, or None when it has none (older checkpoints)."""
    path = spec_path(prefix)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as err:
        raise ModelError('%s: not a readable model spec (%s)' % (path, err))
    if not isinstance(spec, dict) or spec.get('format') != SPEC_FORMAT:
        raise ModelError('%s: not a model spec (no "format": "%s")' % (path, SPEC_FORMAT))
    if spec.get('format_version', 0) > SPEC_VERSION:
        raise ModelError('%s: model spec format %s is newer than this project reads (%d); '
                         'update mxnet-ssd' % (path, spec.get('format_version'), SPEC_VERSION))
    missing = [key for key in SETTINGS if key not in spec]
    if missing:
        raise ModelError('%s: model spec lacks %s' % (path, ', '.join(missing)))
    return spec


def resolve_settings(spec, flags, source=''):
    """Model settings: ``flags`` (name -> value, None = not given) over ``spec`` (or None) over
    the project defaults.  A flag that contradicts the spec so that the weights cannot fit
    (network, class count, preset overrides) raises ModelError naming both values."""
    flags = {k: v for k, v in flags.items() if v is not None}
    if spec is None:
        settings = dict(defaults.NMS, mean_pixels=defaults.MEAN_PIXELS, preset_overrides={})
        if 'class_names' in flags and 'num_classes' not in flags:
            settings['num_classes'] = len(flags['class_names'])
        settings.update(flags)
        return settings
    settings = {key: spec[key] for key in SETTINGS}
    for key in ('network', 'num_classes', 'preset_overrides'):
        if key in flags and spec[key] is not None and _normal(flags[key]) != _normal(spec[key]):
            raise ModelError('--%s %s contradicts the model spec %s (%s %s): the weights were '
                             'trained for that; leave the flag out'
                             % (key.replace('_', '-').replace('classes', 'class'),
                                _shown(flags[key]), source, key, _shown(spec[key])))
    if 'class_names' in flags and len(flags['class_names']) != spec['num_classes']:
        raise ModelError('--class-names gives %d names, the model spec %s has %d classes'
                         % (len(flags['class_names']), source, spec['num_classes']))
    settings.update(flags)
    settings['data_shape'] = shape_value(settings['data_shape'])
    return settings


def _normal(value):
    return json.dumps(jsonable(value), sort_keys=True)


def _shown(value):
    return json.dumps(jsonable(value)) if isinstance(value, (dict, list, tuple)) else value


def shape_value(shape):
    """The canonical data_shape value: an int for a square input, else (height, width)."""
    height, width = image_hw(shape)
    return height if height == width else (height, width)


def warn_if_shape_far(spec, data_shape, source):
    """An input far from the trained size still runs but finds objects of other sizes."""
    trained, asked = image_hw(spec['data_shape']), image_hw(data_shape)
    if any(a > 1.5 * t or a < t / 1.5 for a, t in zip(asked, trained)):
        logger.warning('--data-shape %s is far from the %s the model was trained with (%s); '
                       'expect fewer detections', shape_tag(asked), shape_tag(trained), source)


def open_model(prefix, flags, fallback):
    """(prefix, spec or None, settings) of the model a command line names.  Settings: ``flags``
    over the spec (``resolve_settings``); without a spec, ``flags`` over ``fallback`` (the
    script's defaults).  ``class_names`` and ``num_classes`` always come out consistent."""
    given = {k: v for k, v in flags.items() if v is not None}
    prefix = find_model(prefix, given.get('network', fallback.get('network')),
                        given.get('data_shape', fallback.get('data_shape')),
                        fallback.get('data_shape'))
    spec = read_spec(prefix)
    settings = resolve_settings(spec, given, spec_path(prefix))
    if spec is not None and 'data_shape' in given:
        warn_if_shape_far(spec, given['data_shape'], spec_path(prefix))
    for key, value in fallback.items():
        settings.setdefault(key, value)
    names = settings.get('class_names')
    count = settings.get('num_classes') or (len(names) if names else None)
    if names is None or ('class_names' not in given and count != len(names)):
        names = ['class_%d' % i for i in range(count)]
    if count != len(names):
        raise ModelError('--class-names gives %d names but --num-class is %d'
                         % (len(names), count))
    settings.update(class_names=list(names), num_classes=count,
                    data_shape=shape_value(settings['data_shape']),
                    deploy=bool(spec and spec.get('deploy')))
    return prefix, spec, settings


def find_model(prefix, network, data_shape, default_shape=None):
    """The checkpoint prefix a command line names: ``prefix`` itself when it has a spec or
    checkpoints, else its expansion by network and data shape (see ``expand_prefix``).  When
    that names no model but the expansion by ``default_shape`` (the script's default size)
    does, that one: ``--data-shape 224,320`` on 'model/ssd_' then runs the model trained at
    224 at that size instead of looking for one trained at 224x320."""
    if _has_model(prefix):
        return prefix
    expanded = expand_prefix(prefix, network, data_shape)
    if default_shape is not None and not _has_model(expanded):
        trained = expand_prefix(prefix, network, default_shape)
        if _has_model(trained):
            return trained
    return expanded


def _has_model(prefix):
    return os.path.isfile(spec_path(prefix)) or bool(saved_epochs(prefix))


# ---------------------------------------------------------------------------------- loading

def load_params(prefix, epoch):
    """(arg_params, aux_params) of ``P-NNNN.params``; a missing, truncated or foreign file
    raises ModelError naming it."""
    path = params_path(prefix, epoch)
    require_files([path], prefix)
    return load_params_file(path)


def load_params_file(path):
    try:
        arrays = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ModelError('%s: cannot read the parameters (truncated or not an MXNet .params '
                         'file): %s' % (path, mxnet_reason(err))) from None
    if not isinstance(arrays, dict):
        raise ModelError('%s: holds unnamed arrays, not an MXNet checkpoint' % path)
    arg_params, aux_params = {}, {}
    for key, value in arrays.items():
        kind, _, name = key.partition(':')
        if kind not in ('arg', 'aux') or not name:
            raise ModelError('%s: key %r is not "arg:<name>" or "aux:<name>"; not an MXNet '
                             'checkpoint' % (path, key))
        (arg_params if kind == 'arg' else aux_params)[name] = value
    return arg_params, aux_params


def mxnet_reason(err):
    """The line of an MXNetError that says what went wrong (not its C++ stack frames)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(('Traceback', 'File ', '[bt]'))]
    return (reasons or lines or [type(err).__name__])[-1]


def load_symbol(prefix):
    """The saved graph ``P-symbol.json`` (registers the project's operators first)."""
    from . import operators
    path = symbol_path(prefix)
    require_files([path], prefix)
    operators.load()
    try:
        return mx.sym.load(path)
    except mx.base.MXNetError as err:
        raise ModelError('%s: not a readable MXNet symbol: %s'
                         % (path, mxnet_reason(err))) from None


def deploy_symbol(symbol, source):
    """The graph of a deploy model (detection output only).  A training graph is refused: its
    detection depends on the label input."""
    outputs = symbol.list_outputs()
    if 'label' in symbol.list_arguments() or len(outputs) != 1:
        raise ModelError('%s is a training graph (outputs %s), not a deploy model: give the '
                         'network (or its model spec) instead of --deploy, or export it with '
                         'deploy.py' % (source, ', '.join(outputs)))
    return symbol


def inference_symbol(settings):
    """The test symbol of ``settings`` (a spec or ``resolve_settings`` result)."""
    from . import operators
    from .symbol_factory import get_symbol
    operators.load()
    return get_symbol(settings['network'], settings['data_shape'], settings['num_classes'],
                      nms_thresh=settings['nms_thresh'], force_suppress=settings['force_nms'],
                      nms_topk=settings['nms_topk'], **(settings.get('preset_overrides') or {}))


def inference_model(prefix, epoch, settings):
    """(symbol, arg_params, aux_params) of checkpoint ``prefix``/``epoch`` for inference, the
    parameters checked against the graph: the test graph of ``settings``, or with
    ``settings['network']`` None the saved graph (a deploy or converted model)."""
    if settings['network'] is None:
        symbol = deploy_symbol(load_symbol(prefix), symbol_path(prefix))
    else:
        symbol = inference_symbol(settings)
    arg_params, aux_params = load_params(prefix, epoch)
    data_desc = mx.io.DataDesc('data', (1, 3) + tuple(image_hw(settings['data_shape'])))
    check_params(symbol, data_desc, arg_params, aux_params, params_path(prefix, epoch))
    return symbol, arg_params, aux_params


def check_params(symbol, data_desc, arg_params, aux_params, source):
    """Every parameter the symbol needs is there with the right shape; otherwise ModelError
    says which ones are not (the usual cause: another network, data shape or class count)."""
    arg_shapes, _, aux_shapes = symbol.infer_shape(**{data_desc.name: data_desc.shape})
    needed = dict(zip(symbol.list_arguments(), arg_shapes))
    needed.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    given = dict(arg_params, **aux_params)
    problems = ['%s missing' % name if name not in given else
                '%s is %s, network needs %s' % (name, given[name].shape, tuple(shape))
                for name, shape in needed.items()
                if name != data_desc.name
                and (name not in given or given[name].shape != tuple(shape))]
    if problems:
        raise ModelError('%s does not fit the network (%d problems: %s%s); check --network, '
                         '--data-shape, --num-class and --preset-overrides (or the model spec)'
                         % (source, len(problems), '; '.join(problems[:3]),
                            '; ...' if len(problems) > 3 else ''))


def bind_for_inference(symbol, arg_params, aux_params, data_desc, ctx, source):
    """A Module of ``symbol`` bound for inference on ``data_desc`` with the checked params.

    On the CPU, 3x3 convolutions where it measured faster run as our Winograd operator
    (``symbol.winograd``; ``MXSSD_WINOGRAD=0`` turns it off).  Only the bound graph changes:
    parameter names stay, and nothing converted is ever saved."""
    check_params(symbol, data_desc, arg_params, aux_params, source)
    if all(c.device_type == 'cpu' for c in (ctx if isinstance(ctx, (list, tuple)) else [ctx])):
        symbol = use_winograd(symbol, {data_desc.name: data_desc.shape})
    module = mx.mod.Module(symbol, data_names=(data_desc.name,), label_names=None, context=ctx)
    module.bind(data_shapes=[data_desc], for_training=False)
    module.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    return module


def used_params(symbol, arg_params, aux_params):
    """Only the parameters the graph reads (a finetuned checkpoint may carry leftovers)."""
    args, auxs = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
    return ({k: v for k, v in arg_params.items() if k in args},
            {k: v for k, v in aux_params.items() if k in auxs})


# --------------------------------------------------------------------------------- exporting

def export_model(prefix, epoch, symbol, arg_params, aux_params, spec=None, overwrite=True):
    """Write ``symbol``, the parameters it uses and ``spec`` (when given) as checkpoint
    ``prefix``/``epoch``, each file atomically; returns (symbol file, params file).
    ``overwrite=False`` refuses to replace an existing symbol file."""
    if not overwrite and os.path.exists(symbol_path(prefix)):
        raise ModelError('%s exists; choose another output prefix or pass --overwrite'
                         % symbol_path(prefix))
    arg_params, aux_params = used_params(symbol, arg_params, aux_params)
    atomic_write(symbol_path(prefix), symbol.save)
    if spec is not None:
        write_spec(prefix, spec)
    save_params_file(params_path(prefix, epoch), arg_params, aux_params)
    return symbol_path(prefix), params_path(prefix, epoch)
