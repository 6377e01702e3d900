"""Where a detector runs: MXNet, or an exported ONNX model on ONNX Runtime or OpenVINO.

Every runtime has the same contract, ``detect(data) -> ndarray``: ``data`` the network input
(N, 3, H, W) float32 (RGB, resized, mean subtracted: what DetIter and Detector.preprocess
give), the result the (N, A, 6) detection output of MXNet's graph, rows ``[class_id, score,
xmin, ymin, xmax, ymax]`` with class -1 for rows without a detection.  :class:`RuntimeDetector`
puts one behind the Detector interface (files, decoded images, drawing), so demo, video,
JSON and metric code do not care which runtime ran.

ONNX Runtime and OpenVINO are optional (``pip install -e '.[onnx]'``); asking for a missing
one raises RuntimeUnavailable saying what to install.
"""
import json
import os

import numpy as np

from dataset.iterator import DEFAULT_MEAN_PIXELS

from .detector import Detector, valid_rows
from .onnx_export import onnx_path

RUNTIMES = ('mxnet', 'onnxruntime', 'openvino')
INSTALL_HINT = "pip install -e '.[onnx]'"


class RuntimeUnavailable(ImportError):
    """The runtime's package is not installed; the message says what to install."""


def _import(package):
    import importlib
    try:
        return importlib.import_module(package)
    except ImportError:
        raise RuntimeUnavailable('--runtime %s needs the %s package: %s (or pip install %s)'
                                 % (package, package, INSTALL_HINT, package)) from None


def require_model_file(path):
    if not os.path.isfile(path):
        raise FileNotFoundError('ONNX model not found: %s (export it with python deploy.py '
                                '--format onnx)' % path)


def host_array(data):
    """A contiguous float32 numpy array of network input (numpy, or an MXNet NDArray as
    DetIter yields)."""
    data = data.asnumpy() if hasattr(data, 'asnumpy') else data
    return np.ascontiguousarray(data, np.float32)


class MXNetRuntime:
    """A bound MXNet Module (data input only, detection output first)."""
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


def open_onnx_runtime(runtime, path):
    """ONNX Runtime or OpenVINO running the ONNX model at ``path``."""
    if runtime not in ONNX_RUNTIMES:
        raise ValueError('unknown runtime %r; known: %s' % (runtime, ', '.join(RUNTIMES)))
    package = _import(runtime)
    require_model_file(path)
    return ONNX_RUNTIMES[runtime](package, path)


def model_geometry(runtime, data_shape=None, mean_pixels=None):
    """(data_shape (H, W), mean_pixels) of an exported model: its metadata when it has them,
    else the given values (a model from elsewhere)."""
    meta = getattr(runtime, 'metadata', {})
    if 'data_shape' in meta:
        data_shape = tuple(json.loads(meta['data_shape'])[1:])
    if 'mean_pixels' in meta:
        mean_pixels = tuple(json.loads(meta['mean_pixels']))
    return data_shape, mean_pixels


class RuntimeDetector(Detector):
    """A Detector (same methods and results) whose network runs on ``runtime``."""

    def __init__(self, runtime, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS, batch_size=1,
                 source=''):
        # No MXNet module to bind: only the input geometry of Detector is set up here.
        from dataset.iterator import image_hw
        self.runtime = runtime
        self.data_shape = image_hw(data_shape)
        self.mean_pixels = tuple(float(m) for m in mean_pixels)
        self.batch_size = int(batch_size)
        self.model_prefix, self.epoch = source, None
        self._mean = np.array(self.mean_pixels, np.float32).reshape(3, 1, 1)
        self.last_detection_seconds = 0.0

    def _forward(self, data, num_real):
        output = self.runtime.detect(data)
        return [valid_rows(output[k]) for k in range(num_real)]


def open_exported_model(runtime, model_prefix, data_shape=None, mean_pixels=None):
    """(runtime object, data_shape, mean_pixels) for the ONNX model of a checkpoint prefix (or
    a .onnx path, see ``onnx_path``) on ``runtime`` ('onnxruntime' or 'openvino'); the model's
    own data shape and mean (its metadata) win over the given ones."""
    session = open_onnx_runtime(runtime, onnx_path(model_prefix))
    return (session,) + model_geometry(session, data_shape, mean_pixels)


def onnx_detector(runtime, model_prefix, data_shape=None, mean_pixels=DEFAULT_MEAN_PIXELS,
                  batch_size=1):
    """A RuntimeDetector for the ONNX model of ``model_prefix`` (see open_exported_model)."""
    session, data_shape, mean_pixels = open_exported_model(runtime, model_prefix, data_shape,
                                                           mean_pixels)
    return RuntimeDetector(session, data_shape, mean_pixels, batch_size,
                           source=onnx_path(model_prefix))


def add_runtime_argument(parser):
    """--runtime for demo.py and evaluate.py."""
    parser.add_argument('--runtime', choices=RUNTIMES, default='mxnet',
                        help="run the network on MXNet, or run the model deploy.py --format "
                             "onnx exported from this checkpoint (<dir>/deploy_<name>.onnx) on "
                             "ONNX Runtime or OpenVINO (%s)" % INSTALL_HINT)
