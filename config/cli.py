"""Command-line pieces every script shares: the argument groups (model, NMS, devices), the one
data-shape parser, value checks, device selection and the error style (a user error prints one
``error: ...`` line and exits 1; argparse's own errors exit 2).

Model flags default to None, meaning "from the model spec ``<prefix>-model.json``, else the
script's fallback" (see ``symbol.model_io.resolve_settings``).
"""
import argparse
import functools
import json
import sys

BOOL = argparse.BooleanOptionalAction
# Where the network runs (detect.runtimes); the ONNX ones run deploy.py --format onnx's model.
RUNTIMES = ('mxnet', 'onnxruntime', 'openvino')
ONNX_INSTALL = "pip install -e '.[onnx]'"


class MissingPackage(ImportError):
    """An optional package a flag needs is not installed (or unusable); the message says
    what to install."""


# Errors a user can cause with flags, files or optional packages; anything else is a bug and
# keeps its traceback.
USER_ERRORS = (ValueError, OSError, MissingPackage)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except 'None', whose meaning the help text itself explains."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


# ----------------------------------------------------------------------------------- values

def data_shape(text):
    """'300' -> 300; '256,320' (height,width) -> (256, 320); '300,300' -> 300."""
    try:
        sides = [int(s) for s in str(text).replace('x', ',').split(',') if s.strip()]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) <= 0:
        raise argparse.ArgumentTypeError('expected SIZE or HEIGHT,WIDTH with positive integers, '
                                         'got %r' % text)
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else tuple(sides)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    return value


def json_object(text):
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError('not valid JSON (%s): %r' % (err, text))
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object {...}, got %r' % text)
    return value


# --------------------------------------------------------------------------- argument groups

def add_model_args(parser, prefix_default, prefix_help=''):
    """--prefix --epoch --network --data-shape --num-class --class-names --mean-r/g/b
    --preset-overrides; all but --prefix default to the model spec."""
    group = parser.add_argument_group('model (read from <prefix>-model.json when it exists; '
                                      'a flag given overrides it)')
    group.add_argument('--prefix', default=prefix_default,
                       help="checkpoint prefix; ending in '_' appends <network>_<data shape> "
                            + prefix_help)
    group.add_argument('--epoch', type=int, default=None,
                       help='checkpoint epoch (default: the newest one with this prefix)')
    group.add_argument('--network', default=None, help='network the model was built with')
    group.add_argument('--data-shape', type=data_shape, default=None,
                       help='network input "S" or "H,W"')
    group.add_argument('--num-class', dest='num_classes', type=positive_int, default=None,
                       help='classes, without background')
    group.add_argument('--class-names', default=None,
                       help='"a,b,c", a file with one name per line, or a name in dataset/names')
    for channel in 'rgb':
        group.add_argument('--mean-' + channel, type=float, default=None,
                           help='mean subtracted from the %s channel (as in training)'
                                % dict(r='red', g='green', b='blue')[channel])
    group.add_argument('--preset-overrides', type=json_object, default=None,
                       help='network preset fields the model was trained with (train.py '
                            '--preset-overrides)')
    return group


def add_nms_args(parser):
    group = parser.add_argument_group('non-maximum suppression (default: the model spec)')
    group.add_argument('--nms', dest='nms_thresh', type=float, default=None,
                       help='NMS IoU threshold')
    group.add_argument('--nms-topk', dest='nms_topk', type=int, default=None,
                       help='detections kept before NMS')
    group.add_argument('--force-nms', action=BOOL, default=None,
                       help='suppress overlapping boxes of different classes too')
    return group


def add_device_args(parser):
    group = parser.add_argument_group('devices')
    group.add_argument('--gpus', default=None,
                       help="GPU ids, e.g. '0,1' (default: GPU 0 if MXNet sees one, else the "
                            "CPU)")
    group.add_argument('--cpu', action=BOOL, default=False, help='run on the CPU')
    return group


def add_runtime_args(parser):
    """--runtime (demo.py, evaluate.py)."""
    group = parser.add_argument_group('runtime')
    group.add_argument('--runtime', choices=RUNTIMES, default='mxnet',
                       help="run the checkpoint on MXNet, or the ONNX model deploy.py --format "
                            "onnx wrote (<dir>/deploy_<name>.onnx, or --prefix FILE.onnx) on "
                            "ONNX Runtime or OpenVINO (%s); its metadata give the classes, "
                            "mean and data shape" % ONNX_INSTALL)
    return group


def add_export_args(parser):
    """deploy.py's output format flags."""
    group = parser.add_argument_group('output format')
    group.add_argument('--format', choices=('mxnet', 'onnx'), default='mxnet',
                       help='mxnet: -symbol.json, .params, -model.json; onnx: one '
                            '<dir>/deploy_<name>.onnx with the whole detector, NMS included, '
                            'the model spec in its metadata (%s)' % ONNX_INSTALL)
    group.add_argument('--onnx-raw', action=BOOL, default=False,
                       help='ONNX without decoding and NMS: outputs cls_prob, loc_pred, '
                            'anchors (for TensorRT, OpenVINO DetectionOutput), as -raw.onnx; '
                            'implies --format onnx')
    group.add_argument('--deploy', action=BOOL, default=False,
                       help="--format onnx: export the checkpoint's own -symbol.json (a "
                            "converted Caffe or deploy model) instead of building the network")
    return group


def model_flags(args):
    """The model settings given on the command line (None = not given), for resolve_settings."""
    from dataset.imdb import load_class_names
    means = (args.mean_r, args.mean_g, args.mean_b)
    if any(m is not None for m in means) and not all(m is not None for m in means):
        raise ValueError('give all three of --mean-r, --mean-g, --mean-b, or none')
    return dict(network=args.network, data_shape=args.data_shape,
                num_classes=args.num_classes,
                class_names=load_class_names(args.class_names) if args.class_names else None,
                mean_pixels=means if means[0] is not None else None,
                preset_overrides=args.preset_overrides,
                nms_thresh=getattr(args, 'nms_thresh', None),
                nms_topk=getattr(args, 'nms_topk', None),
                force_nms=getattr(args, 'force_nms', None))


def open_model(args, fallback):
    """(prefix, spec or None, settings) of the model the flags name; see model_io.open_model."""
    from symbol.model_io import open_model as open_model_files
    return open_model_files(args.prefix, model_flags(args), fallback)


# ---------------------------------------------------------------------------------- devices

def contexts(gpus=None, cpu=False):
    """Devices to run on: the CPU if asked, the listed GPUs ('0,1'), or by default GPU 0 when
    MXNet sees one and the CPU otherwise."""
    import mxnet as mx
    if cpu:
        return [mx.cpu()]
    if gpus is None or not str(gpus).strip():
        if gpus is None and mx.context.num_gpus() > 0:
            return [mx.gpu(0)]
        return [mx.cpu()]
    try:
        ids = [int(g) for g in str(gpus).split(',') if g.strip()]
    except ValueError:
        raise ValueError('--gpus must be a comma-separated list of GPU ids, got %r' % gpus)
    available = mx.context.num_gpus()
    missing = [i for i in ids if i >= available]
    if missing:
        raise ValueError('GPU %s requested but MXNet sees %d GPU(s); use --cpu'
                         % (','.join(map(str, missing)), available))
    return [mx.gpu(i) for i in ids]


# ------------------------------------------------------------------------------ error style

def report_error(err):
    print('error: %s' % err, file=sys.stderr)
    return 1


def command(main):
    """Decorates a script's ``main(argv)``: a user error (bad value, missing or unreadable
    file) becomes one ``error:`` line on stderr and status 1 instead of a traceback."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except USER_ERRORS as err:
            return report_error(err)
    return run
