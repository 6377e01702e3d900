"""detect/onnx_quantize.py and tools/quantize.py --format onnx: the INT8 (QDQ) ONNX model of
the shipped detector keeps its fp32 detections on ONNX Runtime, OpenVINO and OpenCV dnn; the
calibration reads exactly the images given; a missing onnxruntime is one clear message."""
import re
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import assert_same_detections
from test_onnx import kept, mxnet_detections, need, shipped  # noqa: F401 (the fixture)
from test_quantize import close_to_fp32, synthetic_batch

CONFIDENT = 0.5


def onnx_detections(runtime, path, data):
    from detect.runtimes import open_onnx_runtime
    return open_onnx_runtime(runtime, path).detect(data)


@pytest.fixture(scope='module')
def int8_paths(shipped):
    """The shipped model's full and raw exports quantised on 16 synthetic training images."""
    need('onnxruntime')
    from detect.onnx_quantize import quantize_onnx
    side = shipped['settings']['data_shape']
    calib = synthetic_batch('train', 16, side)
    paths = {}
    for raw, path in shipped['paths'].items():
        paths[raw] = str(shipped['work'] / ('int8_raw.onnx' if raw else 'int8.onnx'))
        assert quantize_onnx(path, paths[raw], [calib[:8], calib[8:]], 16) == 16
    return paths


def fp32_detections(shipped):
    return mxnet_detections(shipped['symbol'], shipped['args'], shipped['auxs'],
                            shipped['data'])


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_int8_model_keeps_the_fp32_detections(shipped, int8_paths, runtime):
    """On the 6 demo images: the detections >= 0.5 kept (same class, IoU >= 0.7)."""
    need(runtime)
    from detect.onnx_quantize import quantized_conv_count
    from tools.quantize import detection_agreement
    assert quantized_conv_count(int8_paths[False]) == 41   # every convolution runs in int8
    fp32 = fp32_detections(shipped)
    assert ((fp32[:, :, 0] >= 0) & (fp32[:, :, 1] >= CONFIDENT)).sum() >= 12   # measured 15
    int8 = onnx_detections(runtime, int8_paths[False], shipped['data'])
    assert close_to_fp32(*detection_agreement(fp32, int8, CONFIDENT, 0.7))
    # really quantised: the scores moved
    assert not np.allclose(np.sort(int8[:, :, 1]), np.sort(fp32[:, :, 1]), atol=1e-4)


def test_opencv_runs_the_raw_models_with_our_decoding(shipped, int8_paths):
    """fp32 raw model on OpenCV + the graph's own detection operator = MXNet's detections;
    the INT8 raw model keeps them."""
    cv2 = pytest.importorskip('cv2')
    from detect.runtimes import OpenCvRuntime, detection_decoder
    from tools.quantize import detection_agreement
    decode = detection_decoder(shipped['symbol'])
    expected = fp32_detections(shipped)
    actual = OpenCvRuntime(cv2, shipped['paths'][True], decode).detect(shipped['data'])
    assert_same_detections(kept(actual), kept(expected), 1e-4)
    int8 = OpenCvRuntime(cv2, int8_paths[True], decode).detect(shipped['data'])
    assert close_to_fp32(*detection_agreement(expected, int8, CONFIDENT, 0.7))


def test_raw_anchors_are_the_graphs(shipped):
    from detect.onnx_export import raw_anchors
    anchors = shipped['symbol'].get_children()[2]
    needed = set(anchors.list_arguments())
    executor = anchors.bind(mx.cpu(), {k: v for k, v in dict(
        shipped['args'], data=mx.nd.array(shipped['data'][:1])).items() if k in needed},
        grad_req='null', aux_states={k: v for k, v in shipped['auxs'].items()
                                     if k in anchors.list_auxiliary_states()})
    np.testing.assert_allclose(raw_anchors(shipped['paths'][True]),
                               executor.forward()[0].asnumpy(), atol=1e-6)


def test_calibration_reads_exactly_the_given_images(shipped, tmp_path):
    """Min/max calibration: the input's uint8 scale is (max - min) / 255 over the first
    ``num_images`` images given (an image after them, 100x brighter, is not read)."""
    need('onnxruntime')
    import onnx
    from onnx import numpy_helper
    from detect.onnx_quantize import CalibrationImages, quantize_onnx
    side = shipped['settings']['data_shape']
    images = synthetic_batch('train', 6, side)
    images[5] *= 100
    output = str(tmp_path / 'int8.onnx')
    assert quantize_onnx(shipped['paths'][False], output, [images[:4], images[4:]], 5) == 5
    graph = onnx.load(output).graph
    first = next(n for n in graph.node if n.op_type == 'QuantizeLinear' and n.input[0] == 'data')
    scale = numpy_helper.to_array(next(t for t in graph.initializer if t.name == first.input[1]))
    low, high = min(images[:5].min(), 0), max(images[:5].max(), 0)
    np.testing.assert_allclose(scale, (high - low) / 255, rtol=1e-5)
    reader = CalibrationImages(iter([images[:4], images[4:]]), 5)
    assert [len(b['data']) for b in iter(reader.get_next, None)] == [4, 1] and reader.seen == 5


@pytest.mark.parametrize('batches, num_images, message', [
    ([], 4, 'no calibration images: the calibration data are empty'),
    ([np.zeros((2, 3, 224, 224), np.float32)], 0, 'need at least 1 calibration image, got 0'),
])
def test_bad_calibration_is_refused(shipped, tmp_path, batches, num_images, message):
    need('onnxruntime')
    from detect.onnx_quantize import quantize_onnx
    with pytest.raises(ValueError, match=message):
        quantize_onnx(shipped['paths'][False], str(tmp_path / 'x.onnx'), batches, num_images)
    assert not (tmp_path / 'x.onnx').exists()


def test_missing_onnxruntime_is_one_clear_message(shipped_model, monkeypatch, capsys):
    from tools import quantize
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)   # 'import onnxruntime' fails
    monkeypatch.setitem(sys.modules, 'onnxruntime.quantization', None)
    assert quantize.main(['--format', 'onnx', '--calib-rec', 'unused.rec', '--eval-rec', '',
                          '--prefix', shipped_model]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: INT8 ONNX models need onnxruntime's quantization tools "
                        r"\(.*onnxruntime.*\): pip install -e '\.\[onnx\]'.*\n", err), err


def test_cli_writes_the_int8_onnx_and_compares_map(shipped_model, tmp_path, capsys):
    need('onnxruntime')
    from dataset import synthetic
    from tools import quantize
    data = synthetic.prepare(str(tmp_path / 'synthetic'), num_train=8, num_val=8, seed=0,
                             data_shape=224, progress=False)
    output = str(tmp_path / 'ssd_int8')
    assert quantize.main(['--format', 'onnx', '--prefix', shipped_model, '--output', output,
                          '--calib-rec', data['train_rec'], '--eval-rec', data['val_rec'],
                          '--num-calib-images', '8', '--batch-size', '4']) == 0
    out = capsys.readouterr().out
    assert 'quantized 41 convolutions to int8' in out and 'on 8 images' in out
    assert 'wrote %s.onnx' % output in out
    rows = dict(re.findall(r'^((?:fp32|int8) onnxruntime)\s+([\d.]+)\s+[\d.]+$', out, re.M))
    assert set(rows) == {'fp32 onnxruntime', 'int8 onnxruntime'}
    assert abs(float(rows['int8 onnxruntime']) - float(rows['fp32 onnxruntime'])) <= 0.05
