"""deploy.py: portable models run on stock MXNet in a process that never imports the project
and detect exactly what the Detector detects; --no-portable keeps our operators; NMS flags
are baked in; mismatches and missing files are named."""
import json
import os
import runpy
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PACKAGES = ('symbol', 'dataset', 'detect', 'evaluate', 'config', 'train', 'tools')

# Run by a bare interpreter (-I: no PYTHONPATH, neither the current nor the script directory
# on sys.path) that imports nothing but stock MXNet and NumPy.  Prints the detections and
# whether any project module or our operator library got loaded, as JSON.
STOCK_MXNET_SCRIPT = r'''
import json, sys
import mxnet as mx
import numpy as np
prefix, epoch, data_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
symbol, args, auxs = mx.model.load_checkpoint(prefix, epoch)
data = mx.nd.array(np.load(data_file))
module = mx.mod.Module(symbol, label_names=None)
module.bind([('data', data.shape)], for_training=False)
module.set_params(args, auxs)
module.forward(mx.io.DataBatch([data]), is_train=False)
out = module.get_outputs()[0].asnumpy()
print(json.dumps({
    'detections': [o[o[:, 0] >= 0].tolist() for o in out],
    'project_modules': sorted(m for m in sys.modules if m.split('.')[0] in %r),
    'our_operators_registered': hasattr(mx.sym, 'MultiBoxPrior'),
}))
''' % (PROJECT_PACKAGES,)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, random_model):
    workspace = random_model.workspace(tmp_path_factory.mktemp('deploy'), 2)
    return dict(workspace, model=random_model)


def deploy_main(argv):
    return runpy.run_path(os.path.join(ROOT, 'deploy.py'))['main'](argv)


def deploy_args(setup, *extra):
    model = setup['model']
    return ['--network', model.network, '--prefix', setup['folder'],
            '--data-shape', str(model.shape), '--num-class', str(model.num_classes)] + list(extra)


def multibox_ops(symbol_file):
    with open(symbol_file) as f:
        nodes = json.load(f)['nodes']
    return sorted({n['op'] for n in nodes if 'MultiBox' in n['op']}), \
        {n['name']: n.get('attrs', {}) for n in nodes if 'MultiBoxDetection' in n['op']}


def test_portable_deploy_runs_on_stock_mxnet_with_the_same_detections(setup, tmp_path, capsys):
    model = setup['model']
    assert deploy_main(deploy_args(setup, '--output-prefix', str(tmp_path / 'portable'))) == 0
    assert 'stock MXNet operators' in capsys.readouterr().out
    symbol_file = str(tmp_path / 'portable-symbol.json')
    ops, detection = multibox_ops(symbol_file)
    assert ops == ['_contrib_MultiBoxDetection', '_contrib_MultiBoxPrior']
    assert list(detection) == ['detection']
    detector = model.detector(setup['prefix'])
    expected = detector.im_detect(setup['paths'])
    data = np.stack([detector.preprocess(cv2.imread(p)) for p in setup['paths']])
    np.save(str(tmp_path / 'data.npy'), data)
    proc = subprocess.run(
        [sys.executable, '-I', '-c', STOCK_MXNET_SCRIPT, str(tmp_path / 'portable'),
         str(model.epoch), str(tmp_path / 'data.npy')], cwd=str(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['project_modules'] == []
    assert not result['our_operators_registered']
    model.same_detections([np.array(d, np.float32) for d in result['detections']], expected)


def test_default_output_name_and_no_portable_keeps_our_operators(setup, capsys):
    model = setup['model']
    assert deploy_main(deploy_args(setup, '--no-portable')) == 0
    deployed = os.path.join(str(setup['work']), 'deploy_ssd_%s_%d' % (model.network, model.shape))
    printed = capsys.readouterr().out
    assert "this project's operators" in printed
    assert '--deploy --prefix %s --epoch %d\n' % (deployed, model.epoch) in printed
    ops, _ = multibox_ops(deployed + '-symbol.json')
    assert ops == ['MultiBoxDetection', 'MultiBoxPrior']
    from detect.detector import Detector
    from_deploy = Detector(None, deployed, model.epoch, model.shape, model.mean)
    assert from_deploy.symbol.list_arguments()[0] == 'data'
    model.same_detections(from_deploy.im_detect(setup['paths']),
                           model.detector(setup['prefix']).im_detect(setup['paths']))


def test_only_the_used_parameters_are_saved_unchanged(setup, tmp_path):
    model = setup['model']
    from symbol.symbol_factory import get_symbol_train
    arg_params, aux_params = mx.model.load_params(setup['prefix'], model.epoch)
    extra = dict(arg_params, leftover_weight=mx.nd.ones((2,)))   # e.g. from a finetune
    prefix = str(tmp_path / ('ssd_%s_%d' % (model.network, model.shape)))
    training_graph = get_symbol_train(model.network, model.shape, model.num_classes)
    mx.model.save_checkpoint(prefix, model.epoch, training_graph, extra, aux_params)
    assert deploy_main(['--network', model.network, '--prefix', str(tmp_path / 'ssd_'),
                        '--data-shape', str(model.shape),
                        '--num-class', str(model.num_classes)]) == 0
    saved_args, saved_auxs = mx.model.load_params(
        str(tmp_path / ('deploy_ssd_%s_%d' % (model.network, model.shape))), model.epoch)
    assert sorted(saved_args) == sorted(arg_params) and sorted(saved_auxs) == sorted(aux_params)
    for name, value in saved_args.items():
        np.testing.assert_array_equal(value.asnumpy(), arg_params[name].asnumpy())


def test_nms_settings_are_baked_into_the_graph(setup, tmp_path):
    out = str(tmp_path / 'm')
    assert deploy_main(deploy_args(setup, '--nms', '0.3', '--nms-topk', '50', '--no-force-nms',
                                   '--output-prefix', out)) == 0
    _, detection = multibox_ops(out + '-symbol.json')
    attrs = detection['detection']
    assert (attrs['nms_threshold'], attrs['nms_topk'], attrs['force_suppress']) == \
        ('0.3', '50', 'False')


def test_mismatch_and_missing_files_are_named(setup, capsys):
    model = setup['model']
    assert deploy_main(deploy_args(setup, '--num-class', '5')) == 1
    err = capsys.readouterr().err
    assert 'does not fit the network' in err
    assert 'conv_6_relu_cls_pred_conv_weight is (20, 64, 3, 3), network needs (24, 64, 3, 3)' in err
    assert deploy_main(deploy_args(setup, '--epoch', '11')) == 1
    assert 'model file(s) not found: %s-0011.params' % setup['prefix'] in capsys.readouterr().err
    assert deploy_main(deploy_args(setup, '--data-shape', '96')) == 1
    assert 'no checkpoint found: expected %sssd_%s_96-NNNN.params' \
        % (os.path.dirname(setup['prefix']) + os.sep, model.network) in capsys.readouterr().err
