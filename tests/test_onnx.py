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

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import assert_same_detections

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


def onnx_metadata(path):
    import onnx
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


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


def test_training_graph_is_refused_with_a_reason():
    need('onnx')
    from detect.onnx_export import build_onnx_model
    from symbol.symbol_factory import get_symbol_train
    symbol = get_symbol_train('mobilenet_0.25', 128, 4)
    with pytest.raises(ValueError, match='test graph ending in MultiBoxDetection'):
        build_onnx_model(symbol, {}, {}, (128, 128))


def test_multibox_target_translation_says_it_is_training_only():
    need('onnx')
    from detect.onnx_export import convert_target
    with pytest.raises(ValueError, match='training-only'):
        convert_target({'name': 'multibox_target', 'op': 'MultiBoxTarget'})


# ---------------------------------------------------------------------------------------------
# The shipped demo model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def shipped(tmp_path_factory, shipped_model):
    """The shipped model exported (full and raw) with the settings of its model spec, its test
    graph and the demo images' network input."""
    need('onnx')
    from detect.detector import Detector
    from detect.onnx_export import export_onnx_checkpoint
    from detect.shipped import DEMO_IMAGES
    from symbol import model_io
    prefix, spec, settings = model_io.open_model(shipped_model, {}, {})
    assert spec is not None   # the shipped model has one: everything comes from there
    work = tmp_path_factory.mktemp('onnx_shipped')
    epoch = model_io.resolve_epoch(prefix, None)
    paths = {raw: export_onnx_checkpoint(settings, prefix, epoch, spec, raw=raw,
                                         path=str(work / ('raw.onnx' if raw else 'ssd.onnx')))
             for raw in (False, True)}
    symbol, args, auxs = model_io.inference_model(prefix, epoch, settings)
    preprocessing = Detector.on_runtime(None, settings['data_shape'], settings['mean_pixels'])
    images = sorted(os.path.join(DEMO_IMAGES, f) for f in os.listdir(DEMO_IMAGES)
                    if f.endswith('.jpg'))
    data = np.stack([preprocessing.preprocess(cv2.imread(path)) for path in images])
    return dict(paths=paths, symbol=symbol, args=args, auxs=auxs, data=data,
                names=settings['class_names'], epoch=epoch, prefix=prefix, work=work,
                images=images, spec=spec, settings=settings)


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_shipped_model_detections_equal_mxnets(shipped, runtime):
    expected = kept(mxnet_detections(shipped['symbol'], shipped['args'], shipped['auxs'],
                                     shipped['data']))
    assert sum(len(e) for e in expected) >= 20
    for k in range(len(shipped['data'])):   # batch 1, as exported models are mostly run
        actual = kept(run_onnx(runtime, shipped['paths'][False], shipped['data'][k:k + 1]))
        assert_same_detections(actual, expected[k:k + 1], ATOL)


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_runtimes_read_the_settings_from_the_metadata(shipped, runtime):
    """Both runtimes see the metadata: the model spec gives every setting, no flag needed."""
    need(runtime)
    from detect.runtimes import exported_settings, open_onnx_runtime
    session = open_onnx_runtime(runtime, shipped['paths'][False])
    settings = exported_settings(session.metadata, {}, 'ssd.onnx')
    assert settings['data_shape'] == 224 and settings['mean_pixels'] == [123, 117, 104]
    assert settings['class_names'] == shipped['names'] == ['circle', 'square', 'triangle',
                                                           'cross']
    assert settings['num_classes'] == 4 and settings['network'] == 'mobilenet_0.25'
    assert settings['force_nms'] is False and settings['nms_thresh'] == 0.45


def test_exported_settings_take_names_and_mean_but_refuse_what_export_fixed(shipped):
    from detect.runtimes import exported_settings
    from symbol.model_io import ModelError
    meta = onnx_metadata(shipped['paths'][False])
    names = ['a', 'b', 'c', 'd']
    settings = exported_settings(meta, dict(class_names=names, mean_pixels=(1, 2, 3),
                                            data_shape=(224, 224), nms_thresh=0.45), 'm.onnx')
    assert settings['class_names'] == names and list(settings['mean_pixels']) == [1, 2, 3]
    for flags, message in [(dict(nms_thresh=0.3), r'--nms 0\.3: m\.onnx was exported with '
                                                  r'nms_thresh 0\.45, fixed in the model'),
                           (dict(force_nms=True), 'was exported with force_nms False'),
                           (dict(data_shape=300), 'was exported with data_shape'),
                           (dict(num_classes=20), '--num-class 20 contradicts the model spec'),
                           (dict(class_names=['x']), '--class-names gives 1 names')]:
        with pytest.raises(ModelError, match=message):
            exported_settings(meta, flags, 'm.onnx')


def test_a_model_without_spec_gives_its_separate_metadata(shipped):
    from detect.runtimes import exported_settings
    from symbol.model_io import ModelError
    meta = {k: v for k, v in onnx_metadata(shipped['paths'][False]).items()
            if k != 'model_spec'}
    settings = exported_settings(meta, {}, 'm.onnx')
    assert settings['class_names'] == shipped['names'] and settings['num_classes'] == 4
    assert settings['data_shape'] == [224, 224] and settings['mean_pixels'] == [123, 117, 104]
    del meta['class_names']
    with pytest.raises(ModelError, match='m.onnx has no class names in its metadata'):
        exported_settings(meta, {}, 'm.onnx')
    assert exported_settings(meta, dict(class_names=['a']), 'm.onnx')['num_classes'] == 1


def test_batch_size_is_dynamic(shipped):
    expected = kept(mxnet_detections(shipped['symbol'], shipped['args'], shipped['auxs'],
                                     shipped['data'][:3]))
    assert_same_detections(kept(run_onnx('onnxruntime', shipped['paths'][False],
                                         shipped['data'][:3])), expected, ATOL)


def test_model_is_checker_valid_with_metadata(shipped):
    onnx = need('onnx')
    from detect.export import deploy_model_spec
    from detect.onnx_export import OPSET
    from detect.shipped import SHIPPED_MODEL as model
    proto = onnx.load(shipped['paths'][False])
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [('', OPSET)]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta['class_names']) == shipped['names']
    assert json.loads(meta['mean_pixels']) == list(model['mean_pixels'])
    assert json.loads(meta['data_shape']) == [3, model['data_shape'], model['data_shape']]
    assert meta['network'] == model['network'] and json.loads(meta['epoch']) == shipped['epoch']
    # the whole spec, with the settings the export used (the NMS defaults: per class)
    spec = json.loads(meta['model_spec'])
    assert spec == deploy_model_spec(shipped['spec'], shipped['settings'])
    assert spec['preset'] == shipped['spec']['preset'] and spec['force_nms'] is False
    assert [i.name for i in proto.graph.input] == ['data']
    assert 'NonMaxSuppression' in {n.op_type for n in proto.graph.node}


def test_model_spec_goes_into_the_metadata(shipped):
    onnx = need('onnx')
    from detect.onnx_export import export_onnx
    spec = {'network': 'mobilenet_0.25', 'classes': shipped['names'], 'nested': {'a': [1, 2]}}
    path = export_onnx(shipped['symbol'], shipped['args'], shipped['auxs'], (224, 224),
                       str(shipped['work'] / 'spec.onnx'), spec=spec, metadata={'note': 'x'})
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta['model_spec']) == spec and meta['note'] == 'x'


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_raw_variant_gives_the_networks_probabilities_offsets_and_anchors(shipped, runtime):
    from detect.onnx_export import RAW_OUTPUTS
    need(runtime)
    internals = shipped['symbol'].get_internals()
    expected = mx.sym.Group([internals[n] for n in ('cls_prob_output',
                                                    'multibox_loc_pred_output',
                                                    'multibox_anchors_output')])
    data = shipped['data'][:1]
    expected = [v.asnumpy() for v in expected.bind(
        mx.cpu(), dict(shipped['args'], data=mx.nd.array(data)), aux_states=shipped['auxs'],
        grad_req='null').forward()]
    if runtime == 'onnxruntime':
        import onnxruntime
        session = onnxruntime.InferenceSession(shipped['paths'][True],
                                               providers=['CPUExecutionProvider'])
        assert [o.name for o in session.get_outputs()] == list(RAW_OUTPUTS)
        actual = session.run(None, {'data': data})
    else:
        import openvino
        compiled = openvino.Core().compile_model(shipped['paths'][True], 'CPU',
                                                 {'INFERENCE_PRECISION_HINT': 'f32'})
        result = compiled(data)
        actual = [result[compiled.output(name)] for name in RAW_OUTPUTS]
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, atol=ATOL)


def test_portable_deploy_graph_exports_the_same_detector(shipped):
    """MXNet's _contrib_ operators (a --portable deploy model) translate to the same model."""
    from detect.export import with_builtin_operators
    from detect.onnx_export import export_onnx
    path = export_onnx(with_builtin_operators(shipped['symbol']), shipped['args'],
                       shipped['auxs'], (224, 224), str(shipped['work'] / 'portable.onnx'))
    data = shipped['data'][:2]
    assert_same_detections(kept(run_onnx('onnxruntime', path, data)),
                           kept(run_onnx('onnxruntime', shipped['paths'][False], data)), 0)


# ---------------------------------------------------------------------------------------------
# Random-weight VGG16-SSD300 and ResNet-50-SSD512
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module', params=[('vgg16_reduced', 300, False), ('resnet50', 512, True)],
                ids=['vgg16_reduced-300', 'resnet50-512-force-nms'])
def random_network(request, tmp_path_factory):
    need('onnx')
    from detect.onnx_export import export_onnx
    from symbol.symbol_factory import get_symbol
    network, side, force = request.param
    symbol = get_symbol(network, side, 20, nms_thresh=0.45, force_suppress=force, nms_topk=400)
    data = random_input(side)
    args, auxs = calibrated_random_params(symbol, side, data)
    path = export_onnx(symbol, args, auxs, (side, side),
                       str(tmp_path_factory.mktemp('onnx_random') / (network + '.onnx')))
    return dict(path=path, data=data,
                expected=kept(mxnet_detections(symbol, args, auxs, data)))


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_random_weight_detections_equal_mxnets(random_network, runtime):
    assert len(random_network['expected'][0]) >= 100   # many candidates: NMS has work to do
    actual = kept(run_onnx(runtime, random_network['path'], random_network['data']))
    assert_same_detections(actual, random_network['expected'], ATOL)


# ---------------------------------------------------------------------------------------------
# Every preset exports
# ---------------------------------------------------------------------------------------------
PRESETS = [('vgg16_reduced', 300), ('vgg16_reduced', 512), ('legacy_vgg16_ssd_300', 300),
           ('legacy_vgg16_ssd_512', 512), ('resnet50', 512), ('resnet101', 512),
           ('inceptionv3', 512), ('mobilenet', 300), ('mobilenet_0.75', 300),
           ('mobilenet_0.5', 300), ('mobilenet_0.25', 300)]


@pytest.mark.parametrize('network,side', PRESETS, ids=['%s-%d' % p for p in PRESETS])
def test_every_preset_exports_a_checker_valid_model(network, side):
    """The graph converts and passes the full check (zero weights: only shapes matter)."""
    onnx = need('onnx')
    from detect.onnx_export import build_onnx_model
    from symbol.symbol_factory import get_symbol
    symbol = get_symbol(network, side, 20)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, side, side))
    args = {n: mx.nd.zeros(s) for n, s in zip(symbol.list_arguments(), arg_shapes)
            if n != 'data'}
    auxs = {n: mx.nd.ones(s) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    model = build_onnx_model(symbol, args, auxs, (side, side))   # runs the full check
    num_anchors = symbol.infer_shape(data=(1, 3, side, side))[1][0][1]
    output = model.graph.output[0]
    assert output.name == 'detection'
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == [
        'batch', num_anchors, 6]
    # every anchor folded into constants (one per MultiBoxPrior node)
    priors = {n['name'] for n in json.loads(symbol.tojson())['nodes']
              if n['op'] == 'MultiBoxPrior'}
    folded = sum(int(np.prod(a.t.dims)) for n in model.graph.node if n.name in priors
                 for a in n.attribute)
    assert len(priors) >= 5 and folded == num_anchors * 4


# ---------------------------------------------------------------------------------------------
# The command lines
# ---------------------------------------------------------------------------------------------
def run_script(script, argv, capsys):
    status = runpy.run_path(os.path.join(ROOT, script))['main'](argv)
    out, err = capsys.readouterr()
    return status, out, err


def detection_lines(stdout):
    """demo.py's per-image lines (not the note on what the shipped model is)."""
    return [line for line in stdout.splitlines()
            if ': ' in line and 'object' in line and not line.startswith('note: ')]


def test_deploy_then_demo_on_onnxruntime_prints_mxnets_detections(shipped, tmp_path, capsys):
    """deploy.py --format onnx --prefix P: settings from P's spec; demo.py --runtime onnxruntime
    --prefix <the .onnx>: settings from its metadata, no other model flag."""
    need('onnxruntime')
    out_prefix = str(tmp_path / 'ssd_shipped')
    status, out, err = run_script('deploy.py', ['--format', 'onnx', '--prefix', shipped['prefix'],
                                                '--epoch', str(shipped['epoch']),
                                                '--output-prefix', out_prefix], capsys)
    assert status == 0, err
    assert os.path.isfile(out_prefix + '.onnx') and 'demo.py --runtime onnxruntime' in out
    assert json.loads(onnx_metadata(out_prefix + '.onnx')['model_spec'])['class_names'] == \
        shipped['names']
    demo = ['--images', ','.join(shipped['images']), '--save-dir', '', '--json',
            str(tmp_path / 'dets.json')]
    status, reference, err = run_script('demo.py', demo, capsys)
    assert status == 0, err
    status, out, err = run_script('demo.py', demo + ['--runtime', 'onnxruntime',
                                                      '--prefix', out_prefix + '.onnx'], capsys)
    assert status == 0, err
    assert detection_lines(out) == detection_lines(reference)
    assert len(detection_lines(out)) == len(shipped['images'])
    written = json.loads((tmp_path / 'dets.json').read_text())
    assert written['model']['runtime'] == 'onnxruntime'
    assert written['model']['prefix'] == out_prefix + '.onnx'
    assert written['model']['epoch'] == shipped['epoch']
    assert written['class_names'] == shipped['names']


def test_demo_finds_the_onnx_model_beside_the_deploy_prefix(shipped, tmp_path, capsys):
    """--prefix of a checkpoint (or its deploy_ prefix) finds <dir>/deploy_<name>.onnx."""
    need('onnxruntime')
    import shutil
    from symbol import model_io
    checkpoint = str(tmp_path / 'ssd_x')
    shutil.copy(shipped['paths'][False], model_io.onnx_path(checkpoint))
    for prefix in (checkpoint, model_io.deploy_prefix(checkpoint)):
        status, out, err = run_script('demo.py', ['--images', shipped['images'][0],
                                                  '--save-dir', '', '--runtime', 'onnxruntime',
                                                  '--prefix', prefix], capsys)
        assert status == 0, err
        assert len(detection_lines(out)) == 1


def test_deploy_writes_the_raw_variant_next_to_the_checkpoint_name(shipped, tmp_path, capsys):
    onnx = need('onnx')
    from detect.onnx_export import RAW_OUTPUTS
    from symbol.model_io import onnx_path
    prefix = str(tmp_path / 'out')
    status, out, err = run_script('deploy.py', ['--onnx-raw', '--output-prefix', prefix],
                                  capsys)
    assert status == 0, err
    model = onnx.load(prefix + '-raw.onnx')
    assert [o.name for o in model.graph.output] == list(RAW_OUTPUTS)
    assert onnx_path('model/ssd_x') == os.path.join('model', 'deploy_ssd_x.onnx')
    assert onnx_path('model/ssd_x', raw=True) == os.path.join('model', 'deploy_ssd_x-raw.onnx')
    assert onnx_path('model/deploy_ssd_x') == os.path.join('model', 'deploy_ssd_x.onnx')
    assert onnx_path('elsewhere/m.onnx') == 'elsewhere/m.onnx'


@pytest.mark.parametrize('script,runtime', [('demo.py', 'onnxruntime'),
                                            ('demo.py', 'openvino'),
                                            ('evaluate.py', 'openvino'),
                                            ('deploy.py', None)])
def test_missing_package_gives_one_line_naming_what_to_install(script, runtime, tmp_path,
                                                               capsys, monkeypatch):
    """Without the package: exit status 1 and one 'error:' line with the pip command."""
    package = runtime or 'onnx'
    monkeypatch.setitem(sys.modules, package, None)   # import fails as if not installed
    argv = (['--runtime', runtime] if runtime else
            ['--format', 'onnx', '--output-prefix', str(tmp_path / 'x')])
    argv += {'demo.py': ['--save-dir', ''], 'evaluate.py': ['--cpu']}.get(script, [])
    status, out, err = run_script(script, argv, capsys)
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error:'), err
    assert package in lines[0] and "pip install -e '.[onnx]'" in lines[0]


def test_demo_names_the_missing_onnx_file(tmp_path, capsys):
    need('onnxruntime')
    status, out, err = run_script('demo.py', ['--runtime', 'onnxruntime', '--save-dir', '',
                                              '--prefix', str(tmp_path / 'none.onnx')], capsys)
    assert status == 1
    assert err.strip() == ('error: ONNX model not found: %s (export it with python deploy.py '
                           '--format onnx and the same --prefix)' % (tmp_path / 'none.onnx'))


def test_demo_refuses_an_nms_flag_the_export_fixed(shipped, capsys):
    need('onnxruntime')
    status, out, err = run_script('demo.py', ['--runtime', 'onnxruntime', '--save-dir', '',
                                              '--prefix', shipped['paths'][False],
                                              '--force-nms'], capsys)
    assert status == 1
    assert err.strip().startswith('error: --force-nms True: %s was exported with force_nms '
                                  'False, fixed in the model' % shipped['paths'][False]), err


@pytest.fixture(scope='module')
def synthetic_val(tmp_path_factory):
    """The shipped model's validation set (train/recipes.py DEMO: seed, size, 200 images;
    val images do not depend on the number of training images)."""
    from dataset.synthetic import prepare
    from train.recipes import DEMO
    return prepare(str(tmp_path_factory.mktemp('onnx_val') / 'synthetic'), num_train=1,
                   num_val=DEMO.num_val, seed=DEMO.data_seed, data_shape=DEMO.data_shape,
                   progress=False)


@pytest.mark.parametrize('runtime', RUNTIMES)
def test_evaluate_on_an_onnx_runtime_gives_mxnets_map(shipped, synthetic_val, runtime, tmp_path,
                                                      capsys):
    """evaluate.py --runtime R on the shipped model's synthetic val set (all 200 images), the
    settings from the spec / the ONNX metadata: per-class APs and mAP within 1e-4 of MXNet's."""
    need(runtime)
    common = ['--rec-path', synthetic_val['val_rec'], '--batch-size', '8', '--cpu']
    reference = run_script('evaluate.py', common + ['--output-dir', str(tmp_path / 'mx'),
                                                    '--prefix', shipped['prefix']], capsys)[0]
    results = run_script('evaluate.py', common + ['--output-dir', str(tmp_path / runtime),
                                                   '--runtime', runtime,
                                                   '--prefix', shipped['paths'][False]],
                         capsys)[0]
    assert results['data']['num_images'] == reference['data']['num_images'] == 200
    assert reference['summary']['mAP'] > 0.8
    print('%s mAP %.6f, MXNet %.6f' % (runtime, results['summary']['mAP'],
                                        reference['summary']['mAP']))
    assert abs(results['summary']['mAP'] - reference['summary']['mAP']) <= 1e-4
    for name, ap in reference['per_class_ap'].items():
        assert abs(results['per_class_ap'][name] - ap) <= 1e-4, name


def test_converted_caffe_model_exports_through_deploy_py(tmp_path, capsys):
    """A Caffe SSD converted by tools/caffe_converter (a deploy graph with its own priors and
    DetectionOutput settings) exports its own graph, as its model spec says (no model flag),
    and detects as on MXNet."""
    need('onnx')
    from test_caffe_ssd import build_small_ssd
    from tools.caffe_converter.converter import convert
    net = build_small_ssd(np.random.default_rng(0), confidence_threshold=0.01)
    model = convert(*net.save(str(tmp_path / 'deploy.prototxt'),
                              str(tmp_path / 'model.caffemodel')))
    prefix = str(tmp_path / 'ssd_caffe')
    model.save(prefix, 1)
    status, out, err = run_script('deploy.py', [
        '--format', 'onnx', '--prefix', prefix, '--epoch', '1', '--output-prefix', prefix], capsys)
    assert status == 0, err
    symbol, args, auxs = mx.model.load_checkpoint(prefix, 1)
    data = random_input(64)
    expected = kept(mxnet_detections(symbol, args, auxs, data))
    assert len(expected[0]) >= 100
    for runtime in RUNTIMES:
        assert_same_detections(kept(run_onnx(runtime, prefix + '.onnx', data)), expected, ATOL)


def test_too_new_onnx_is_named(monkeypatch):
    onnx = need('onnx')
    from detect.onnx_export import OnnxUnavailable, require_onnx
    monkeypatch.delattr(onnx, 'mapping', raising=False)
    monkeypatch.setitem(sys.modules, 'onnx.mapping', None)
    with pytest.raises(OnnxUnavailable, match=r'onnx\.mapping, removed in onnx 1\.19'):
        require_onnx()
