"""Where a detector runs: MXNet, or an exported ONNX model on ONNX Runtime or OpenVINO.

Every runtime has the same contract, ``detect(data) -> ndarray``: ``data`` the network input
(N, 3, H, W) float32 (RGB, resized, mean subtracted: what DetIter and Detector.preprocess
give), the result the (N, A, 6) detection output of MXNet's graph, rows ``[class_id, score,
xmin, ymin, xmax, ymax]`` with class -1 for rows without a detection.  The Detector runs one
(``Detector.on_runtime``), so demo, video, JSON and metric code do not care which ran.

An ONNX model written by deploy.py --format onnx carries its model spec in its metadata
(``model_spec``), so it needs no model flag: :func:`open_exported_model` reads the settings
from there.  ONNX Runtime and OpenVINO are optional (``pip install -e '.[onnx]'``); asking for
a missing one raises MissingPackage saying what to install.
"""
import json
import os

import numpy as np

from config import defaults
from config.cli import ONNX_INSTALL, RUNTIMES, MissingPackage
from symbol import model_io

# Settings an ONNX model fixes at export: a flag asking for another value cannot apply.
FIXED_AT_EXPORT = ('nms_thresh', 'nms_topk', 'force_nms', 'data_shape')


def _import(package):
    import importlib
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingPackage('--runtime %s needs the %s package: %s (or pip install %s)'
                             % (package, package, ONNX_INSTALL, package)) from None


def host_array(data):
    """A contiguous float32 numpy array of network input (numpy, or an MXNet NDArray as
    DetIter yields)."""
    data = data.asnumpy() if hasattr(data, 'asnumpy') else data
    return np.ascontiguousarray(data, np.float32)


class MXNetRuntime:
    """A Module bound by ``model_io.bind_for_inference`` (data input, detection output)."""
    name = 'mxnet'

    def __init__(self, module):
        self.module = module

    def detect(self, data):
        import mxnet as mx
        if not isinstance(data, mx.nd.NDArray):
            data = mx.nd.array(data)
        self.module.forward(mx.io.DataBatch(data=[data]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()


class OnnxRuntime:
    """An ONNX model on ONNX Runtime's CPU provider (``ort``: the onnxruntime module)."""
    name = 'onnxruntime'

    def __init__(self, ort, path):
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no advice about graph optimisations
        threads = os.environ.get('OMP_NUM_THREADS')
        if threads and threads.isdigit():
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def detect(self, data):
        return self.session.run(None, {self.input_name: host_array(data)})[0]


class OpenVinoRuntime:
    """An ONNX model compiled by OpenVINO for the CPU (``ov``: the openvino module)."""
    name = 'openvino'

    def __init__(self, ov, path):
        core = ov.Core()
        model = core.read_model(path)
        self.metadata = openvino_metadata(model)
        # f32: on CPUs with bf16 units OpenVINO would otherwise compute in bf16
        self.compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
        self.request = self.compiled.create_infer_request()

    def detect(self, data):
        self.request.infer({0: host_array(data)})
        return self.request.get_output_tensor(0).data.copy()


def openvino_metadata(model):
    """metadata_props of an ONNX model read by OpenVINO (kept as rt_info 'framework')."""
    try:
        framework = model.get_rt_info()['framework']
        return {key: value.astype(str) if hasattr(value, 'astype') else str(value)
                for key, value in framework.items()}
    except (KeyError, AttributeError, RuntimeError):
        return {}


ONNX_RUNTIMES = {runtime.name: runtime for runtime in (OnnxRuntime, OpenVinoRuntime)}


class OpenCvRuntime:
    """A raw ONNX model (deploy.py --onnx-raw: outputs cls_prob, loc_pred, anchors) on OpenCV
    dnn, decoded by ``decode(cls_prob, loc_pred, anchors) -> detections`` (see
    :func:`detection_decoder`).  OpenCV 4.11 cannot run the full export (it has no
    NonMaxSuppression layer) nor return a constant output, so the anchors are read from the
    file."""
    name = 'opencv'

    def __init__(self, cv2, path, decode):
        from .onnx_export import raw_anchors
        level = cv2.getLogLevel()
        cv2.setLogLevel(0)   # silent: it logs an error for the constant 'anchors' output
        try:
            self.net = cv2.dnn.readNetFromONNX(path)
        finally:
            cv2.setLogLevel(level)
        self.anchors, self.decode = raw_anchors(path), decode

    def detect(self, data):
        self.net.setInput(host_array(data))
        cls_prob, loc_pred = self.net.forward(['cls_prob', 'loc_pred'])
        return self.decode(cls_prob, loc_pred, self.anchors)


def detection_decoder(symbol):
    """``decode(cls_prob, loc_pred, anchors) -> detections`` (numpy in and out) with the
    detection node of the test graph ``symbol``: same operator, same attributes."""
    import mxnet as mx
    from .onnx_export import require_test_graph
    graph = json.loads(require_test_graph(symbol).tojson())
    node = graph['nodes'][graph['heads'][0][0]]
    name, attrs = node['op'], node.get('attrs', {})
    # MXNet puts '_contrib_X' operators at mx.nd.contrib.X, ours (mx.library.load) at mx.nd.X
    module, name = ((mx.nd.contrib, name[len('_contrib_'):]) if name.startswith('_contrib_')
                    else (mx.nd, name))
    operator = getattr(module, name)

    def decode(cls_prob, loc_pred, anchors):
        return operator(mx.nd.array(cls_prob), mx.nd.array(loc_pred), mx.nd.array(anchors),
                        **attrs).asnumpy()
    return decode


def open_onnx_runtime(runtime, path):
    """ONNX Runtime or OpenVINO running the ONNX model at ``path``."""
    if runtime not in ONNX_RUNTIMES:
        raise ValueError('unknown runtime %r; known: %s' % (runtime, ', '.join(RUNTIMES)))
    package = _import(runtime)
    if not os.path.isfile(path):
        raise model_io.ModelError('ONNX model not found: %s (export it with python deploy.py '
                                  '--format onnx and the same --prefix)' % path)
    return ONNX_RUNTIMES[runtime](package, path)


# ---------------------------------------------------------------------------- model settings

def metadata_spec(metadata, source):
    """The model spec an exported model carries: ``model_spec`` whole, else (a model exported
    without one) what the separate class_names / mean_pixels / data_shape entries give."""
    try:
        if 'model_spec' in metadata:
            return json.loads(metadata['model_spec'])
        spec = {key: json.loads(metadata[key]) for key in ('class_names', 'mean_pixels',
                                                           'data_shape') if key in metadata}
    except ValueError as err:
        raise model_io.ModelError('%s: unreadable metadata (%s)' % (source, err))
    if 'data_shape' in spec:
        spec['data_shape'] = spec['data_shape'][-2:]   # stored as (3, H, W)
    if 'class_names' in spec:
        spec['num_classes'] = len(spec['class_names'])
    return dict(spec, network=metadata.get('network'))


def exported_settings(metadata, flags, source):
    """The settings of an exported model: its spec (:func:`metadata_spec`) with the flags given
    (class names, mean) over it.  A flag for something fixed at export (NMS, input size) or
    contradicting the weights (network, class count) raises ModelError naming both."""
    spec = metadata_spec(metadata, source)
    given = {key: value for key, value in flags.items() if value is not None}
    for key in FIXED_AT_EXPORT:
        if key in given and key in spec and _differs(key, given[key], spec[key]):
            raise model_io.ModelError(
                '--%s %s: %s was exported with %s %s, fixed in the model; export again with '
                'deploy.py --format onnx to change it'
                % (key.replace('_thresh', '').replace('_', '-'), given[key], source, key,
                   spec[key]))
    if 'model_spec' in metadata:   # the whole spec: contradictions are caught as for a checkpoint
        settings = model_io.resolve_settings(spec, given, source)
    else:
        settings = dict(dict.fromkeys(model_io.SETTINGS), **dict(spec, **given))
    if not settings.get('class_names'):
        raise model_io.ModelError('%s has no class names in its metadata; give --class-names'
                                  % source)
    settings.update(num_classes=len(settings['class_names']),
                    mean_pixels=settings.get('mean_pixels') or defaults.MEAN_PIXELS)
    return settings


def _differs(key, given, exported):
    if key == 'data_shape':
        return tuple(model_io.image_hw(given)) != tuple(model_io.image_hw(exported))
    return model_io.jsonable(given) != exported


def exported_path(prefix, flags, fallback):
    """The ONNX file a --prefix names (see ``model_io.onnx_path``): a .onnx path, a deploy
    prefix, or a checkpoint prefix ('model/ssd_' expanded by network and data shape)."""
    if prefix.endswith('.onnx'):
        return prefix
    network = flags.get('network') or fallback.get('network')
    data_shape = flags.get('data_shape') or fallback.get('data_shape')
    return model_io.onnx_path(model_io.find_model(prefix, network, data_shape))


def open_exported_model(runtime, prefix, flags, fallback):
    """(runtime object, ONNX path, settings) of the exported model ``prefix`` names, on
    ``runtime`` ('onnxruntime' or 'openvino'); ``flags`` as for ``model_io.open_model``."""
    path = exported_path(prefix, flags, fallback)
    session = open_onnx_runtime(runtime, path)
    return session, path, exported_settings(session.metadata, flags, path)


def exported_epoch(session):
    """The epoch an exported model was made from (its metadata), or None."""
    epoch = session.metadata.get('epoch')
    return int(epoch) if epoch and epoch.isdigit() else None
