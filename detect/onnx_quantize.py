"""INT8 ONNX models: static quantisation (``onnxruntime.quantization.quantize_static``) of a
model detect.onnx_export wrote, calibrated on the images the caller gives.

The one format written is QDQ (QuantizeLinear / DequantizeLinear pairs around the float
operators) with uint8 activations and int8 weights, per tensor, because that is the one all
three runtimes here run as INT8 (measured with onnxruntime 1.32, OpenVINO 2026.4, OpenCV
4.11 on the shipped model): OpenVINO's CPU plugin refuses QDQ with int8 activations ("No
suitable implementations"), OpenCV dnn runs the QOperator form (QLinearConv) ~1.6x slower
than QDQ, and u8 x s8 is ONNX Runtime's fast integer path on AVX2 CPUs.  Only convolutions
are quantised: softmax, the box decoding and NMS stay float, as in tools/quantize's MXNet
INT8 model.  The model's metadata (model spec, classes, mean) are kept.
"""
import itertools
import os
import tempfile

from .onnx_export import INSTALL_HINT, INPUT_NAME, OnnxUnavailable
from .runtimes import host_array

# tools/quantize's calibration modes -> onnxruntime's CalibrationMethod names
CALIB_METHODS = {'naive': 'MinMax', 'entropy': 'Entropy'}
QUANTIZED_OPS = ('Conv',)


def require_quantization():
    """``onnxruntime.quantization``, or OnnxUnavailable saying what to install."""
    try:
        from onnxruntime import quantization
    except ImportError as err:  # onnxruntime itself, or what its quantization imports
        raise OnnxUnavailable('INT8 ONNX models need onnxruntime\'s quantization tools (%s): %s'
                              % (err, INSTALL_HINT)) from None
    return quantization


class CalibrationImages:
    """onnxruntime's CalibrationDataReader over ``batches`` (arrays or NDArrays (N, 3, H, W),
    network input), stopping after ``num_images`` images; ``seen`` counts what it gave."""

    def __init__(self, batches, num_images, input_name=INPUT_NAME):
        self.batches, self.num_images, self.input_name = iter(batches), num_images, input_name
        self.seen = 0

    def get_next(self):
        if self.seen >= self.num_images:
            return None
        batch = next(self.batches, None)
        if batch is None:
            return None
        batch = host_array(batch)[:self.num_images - self.seen]
        self.seen += len(batch)
        return {self.input_name: batch}

    def __iter__(self):  # onnxruntime >= 1.16 may iterate the reader instead
        return iter(self.get_next, None)


def iter_images(data_iter):
    """The images of an MXNet DataIter's batches (``data`` only), padding left out."""
    data_iter.reset()
    for batch in data_iter:
        real = data_iter.batch_size - (batch.pad or 0)
        yield batch.data[0][:real]


def quantize_onnx(source, output, batches, num_images, calib_mode='naive'):
    """Write the INT8 (QDQ) model of the float ONNX model ``source`` to ``output``,
    calibrated on the first ``num_images`` images of ``batches``; returns how many images it
    was calibrated on.  ``calib_mode`` as tools/quantize: 'naive' (min/max) or 'entropy'."""
    quantization = require_quantization()
    if calib_mode not in CALIB_METHODS:
        raise ValueError('calib_mode must be one of %s, got %r'
                         % (', '.join(CALIB_METHODS), calib_mode))
    if num_images < 1:
        raise ValueError('need at least 1 calibration image, got %d' % num_images)
    batches = iter(batches)
    first = next(batches, None)
    if first is None or not len(first):
        raise ValueError('no calibration images: the calibration data are empty')
    reader = CalibrationImages(itertools.chain([first], batches), num_images)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(output))) as work:
        folded = os.path.join(work, 'folded.onnx')
        # Constant folding first: the class heads' biases are padded by a Concat (see
        # symbol/common.py), and quantize_static only quantises a bias that is an initializer.
        # No symbolic shape inference: it needs sympy, and the shapes are static anyway.
        quantization.quant_pre_process(source, folded, skip_symbolic_shape=True)
        quantization.quantize_static(
            folded, output, reader, quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, per_channel=False,
            op_types_to_quantize=list(QUANTIZED_OPS),
            calibrate_method=getattr(quantization.CalibrationMethod, CALIB_METHODS[calib_mode]))
    return reader.seen


def quantized_conv_count(path):
    """Convolutions of an ONNX model that read a dequantised (INT8) input."""
    import onnx
    graph = onnx.load(path).graph
    dequantized = {out for node in graph.node if node.op_type == 'DequantizeLinear'
                   for out in node.output}
    return sum(1 for node in graph.node if node.op_type == 'Conv'
               and node.input[0] in dequantized)
