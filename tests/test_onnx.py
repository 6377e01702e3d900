"""ONNX export (detect/onnx_export.py) and the ONNX Runtime / OpenVINO backends
(detect/runtimes.py), checked against MXNet running the same graph.

Tolerance: 1e-4 on scores and boxes for both runtimes (measured here: at most 6e-6 with
ONNX Runtime 1.32 and OpenVINO 2026.4 in f32).  Skipped, with the reason, where onnx,
onnxruntime or openvino is not installed (pip install -e '.[onnx]').
"""
import json
import os
import runpy
import sys

import mxnet as mx
import numpy as np
import pytest

from test_detect import assert_same_detections, shipped_model_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-4
RUNTIMES = ('onnxruntime', 'openvino')
# Prediction-head output spreads for random weights: softmax scores neither uniform nor
# saturated, boxes of varied sizes (plain He init saturates the scores at exactly 1.0, and
# ties make the order of equal-score rows arbitrary).
HEAD_STD = {'cls_pred_conv_weight': 1.5, 'loc_pred_conv_weight': 0.5}


def need(package):
    return pytest.importorskip(package, reason="%s is not installed (pip install -e '.[onnx]')"
                               % package)


def run_onnx(runtime, path, data):
    need(runtime)
    from detect.runtimes import open_onnx_runtime
    return open_onnx_runtime(runtime, str(path)).detect(data)


def mxnet_detections(symbol, args, auxs, data):
    executor = symbol.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=auxs,
                           grad_req='null')
    return executor.forward(is_train=False)[0].asnumpy()


def kept(output):
    from detect.detector import valid_rows
    return [valid_rows(image) for image in output]


def random_input(side, seed=0, batch=1):
    return np.random.RandomState(seed).uniform(-120, 120, (batch, 3, side, side)).astype(
        np.float32)


def calibrated_random_params(symbol, side, data):
    """He-initialised weights with each prediction head scaled to the spread HEAD_STD."""
    from bench.random_weights import random_params
    mx.random.seed(0)
    args, auxs = random_params(symbol, side)
    heads = [n for n in symbol.list_arguments() if n.endswith(tuple(HEAD_STD))]
    internals = symbol.get_internals()
    outputs = mx.sym.Group([internals[n[:-len('_weight')] + '_output'] for n in heads])
    values = outputs.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=auxs,
                          grad_req='null').forward()
    for name, value in zip(heads, values):
        target = next(std for suffix, std in HEAD_STD.items() if name.endswith(suffix))
        args[name] *= target / float(value.asnumpy().std())
    return args, auxs


# ---------------------------------------------------------------------------------------------
# MultiBoxDetection semantics on hand-made inputs (MXNet's operators are the oracle)
# ---------------------------------------------------------------------------------------------
def multibox_operators(kind):
    """(MultiBoxPrior, MultiBoxDetection): the project's or MXNet's contrib twins."""
    if kind == 'contrib':
        return mx.sym.contrib.MultiBoxPrior, mx.sym.contrib.MultiBoxDetection
    import symbol as _registers_our_operators  # noqa: F401
    return mx.sym.MultiBoxPrior, mx.sym.MultiBoxDetection


def tiny_detector(kind, num_classes, seed, **settings):
    """A graph over the anchors of a 6x6 and a 3x3 map whose class logits and box offsets are
    random constants (parameters): the detection node decides everything."""
    prior_op, detection_op = multibox_operators(kind)
    rng = np.random.RandomState(seed)
    feature_a = mx.sym.Pooling(mx.sym.Variable('data'), kernel=(1, 1), pool_type='max',
                               name='feature_a')
    feature_b = mx.sym.Pooling(feature_a, kernel=(2, 2), stride=(2, 2), pool_type='max',
                               name='feature_b')
    anchors = mx.sym.Concat(*[mx.sym.Flatten(prior_op(f, sizes=(0.3, 0.45), ratios=(1, 2, 0.5),
                                                      name=f.name + '_anchors'))
                              for f in (feature_a, feature_b)], dim=1)
    anchors = mx.sym.Reshape(anchors, shape=(0, -1, 4), name='anchors')
    num_anchors = (36 + 9) * 4
    cls_prob = mx.sym.softmax(mx.sym.Variable('logits'), axis=1, name='cls_prob')
    detection = detection_op(cls_prob, mx.sym.Variable('offsets'), anchors, name='detection',
                             **settings)
    params = {'logits': mx.nd.array(rng.normal(0, 2, (1, num_classes + 1, num_anchors))),
              'offsets': mx.nd.array(rng.normal(0, 0.5, (1, num_anchors * 4)))}
    return detection, params


@pytest.mark.parametrize('kind', ['ours', 'contrib'])
@pytest.mark.parametrize('settings', [
    dict(nms_threshold=0.45, force_suppress=False, nms_topk=400),
    dict(nms_threshold=0.45, force_suppress=True, nms_topk=40),
    dict(nms_threshold=0.3, nms_topk=25, threshold=0.2, clip=False),
    dict(nms_threshold=0.6, background_id=2, variances=(0.2, 0.2, 0.1, 0.1)),
], ids=['per-class', 'force-top40', 'threshold-top25-noclip', 'background2-variances'])
def test_detection_translation_matches_the_operator(tmp_path, kind, settings):
    """Same kept detections as the operator: threshold, top-k before NMS, per-class or forced
    NMS, variances, clipping and another background class."""
    need('onnx')
    from detect.onnx_export import export_onnx
    data = np.zeros((1, 3, 6, 6), np.float32)
    for seed in range(3):
        detection, params = tiny_detector(kind, 3, seed, **settings)
        expected = kept(mxnet_detections(detection, params, {}, data))
        assert len(expected[0]) >= 5
        path = export_onnx(detection, params, {}, (6, 6), str(tmp_path / 'tiny.onnx'))
        assert_same_detections(kept(run_onnx('onnxruntime', path, data)), expected, ATOL)
