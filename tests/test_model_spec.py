"""The model spec and model I/O (symbol/model_io.py) end to end: a run trained with
--preset-overrides is demoed, evaluated and deployed with only --prefix/--epoch; flags that
contradict the spec, naming of '_' prefixes in --resume/--finetune, checkpoints that a fresh run
would replace, bad data shapes, batch sizes and .params files, each with its one error line."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from dataset import synthetic
from symbol import model_io
from train.options import TrainOptions
from train.train_net import train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE, NUM_TRAIN, NUM_VAL, BATCH = 64, 8, 10, 4   # 10 val images: not a multiple of the batch
OVERRIDES = {'ratios': [1, 2]}
NETWORK = 'mobilenet_0.25'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return synthetic.prepare(str(tmp_path_factory.mktemp('spec_data')), num_train=NUM_TRAIN,
                             num_val=NUM_VAL, seed=5, data_shape=SIDE, progress=False)


def run_script(script, *args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS='2'))


def train_args(data, prefix, *extra):
    return ['--network', NETWORK, '--data-shape', SIDE, '--train-path', data['train_rec'],
            '--val-path', data['val_rec'], '--num-class', 4, '--class-names', 'synthetic',
            '--label-width', data['label_width'], '--pretrained', '', '--cpu',
            '--batch-size', BATCH, '--end-epoch', 2, '--optimizer', 'adam', '--lr-steps', '',
            '--seed', 1, '--log', '', '--checkpoint-period', 1, '--prefix', prefix] + list(extra)


def options(data, prefix, **changes):
    return TrainOptions(network=NETWORK, train_path=data['train_rec'], val_path='',
                        num_class=4, class_names='synthetic', data_shape=SIDE, batch_size=BATCH,
                        label_width=data['label_width'], pretrained='', cpu=True,
                        optimizer='adam', lr_steps=(), prefix=str(prefix), checkpoint_period=1,
                        frequent=1000, end_epoch=1, seed=1, log='').replace(**changes)


def error_line(proc):
    """The single 'error: ...' line a script prints for a user error (no traceback)."""
    assert 'Traceback' not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')
              or ': error: ' in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ------------------------------------------------------------------- done when (issue 15)

@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """train.py, 2 epochs, --preset-overrides: the run the other scripts must find again."""
    work = tmp_path_factory.mktemp('spec_run')
    prefix = str(work / 'ssd')
    proc = run_script('train.py', *train_args(data, prefix, '--preset-overrides',
                                              json.dumps(OVERRIDES)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(prefix=prefix, work=work)


def test_the_run_writes_a_spec_with_the_overrides(trained):
    spec = model_io.read_spec(trained['prefix'])
    assert spec['network'] == NETWORK and spec['data_shape'] == [SIDE, SIDE]
    assert spec['num_classes'] == 4
    assert spec['class_names'] == ['circle', 'square', 'triangle', 'cross']
    assert spec['preset_overrides'] == OVERRIDES
    assert spec['preset']['ratios'] == [[1, 2]] * len(spec['preset']['from_layers'])
    assert (spec['nms_thresh'], spec['nms_topk'], spec['force_nms']) == (0.45, 400, False)
    assert spec['mean_pixels'] == [123.0, 117.0, 104.0] and spec['variances'] == [0.1, 0.1,
                                                                                  0.2, 0.2]
    assert model_io.saved_epochs(trained['prefix']) == [1, 2]


def test_demo_evaluate_deploy_need_only_prefix_and_epoch(trained, data):
    prefix, work = trained['prefix'], trained['work']
    image = os.path.join(data['root'], 'JPEGImages')
    demo = run_script('demo.py', '--prefix', prefix, '--epoch', 2, '--images', image,
                      '--save-dir', work / 'demo', '--cpu')
    assert demo.returncode == 0, demo.stderr
    document = json.loads((work / 'demo' / 'detections.json').read_text())
    assert len(document['results']) == NUM_TRAIN + NUM_VAL and document['errors'] == []
    evaluate = run_script('evaluate.py', '--prefix', prefix, '--epoch', 2, '--rec-path',
                          data['val_rec'], '--output-dir', work / 'eval', '--cpu',
                          '--batch-size', BATCH)
    assert evaluate.returncode == 0, evaluate.stderr
    results = json.loads((work / 'eval' / 'results.json').read_text())
    assert results['data']['num_images'] == NUM_VAL
    assert results['settings']['class_names'] == ['circle', 'square', 'triangle', 'cross']
    deploy = run_script('deploy.py', '--prefix', prefix, '--epoch', 2)
    assert deploy.returncode == 0, deploy.stderr
    deployed = model_io.deploy_prefix(prefix)
    assert model_io.read_spec(deployed)['preset_overrides'] == OVERRIDES
    assert model_io.read_spec(deployed)['deploy'] is True
    # the deploy model runs with --prefix/--epoch alone too (its spec says: saved graph)
    again = run_script('demo.py', '--prefix', deployed, '--epoch', 2, '--images', image,
                       '--save-dir', '', '--json', work / 'deployed.json', '--cpu')
    assert again.returncode == 0, again.stderr
    rows = [e['detections'] for e in json.loads((work / 'deployed.json').read_text())['results']]
    assert rows == [e['detections'] for e in document['results']]


def test_a_flag_contradicting_the_spec_names_both_values(trained):
    proc = run_script('demo.py', '--prefix', trained['prefix'], '--epoch', 2, '--num-class', 3,
                      '--save-dir', '', '--cpu')
    assert proc.returncode == 1
    assert error_line(proc) == (
        'error: --num-class 3 contradicts the model spec %s (num_classes 4): the weights were '
        'trained for that; leave the flag out' % model_io.spec_path(trained['prefix']))
    proc = run_script('evaluate.py', '--prefix', trained['prefix'], '--epoch', 2,
                      '--network', 'vgg16_reduced', '--cpu')
    assert proc.returncode == 1
    assert '--network vgg16_reduced contradicts the model spec' in error_line(proc)
    assert '(network mobilenet_0.25)' in error_line(proc)


def test_deploy_refuses_to_overwrite_the_training_symbol(trained):
    symbol_file = model_io.symbol_path(trained['prefix'])
    before = open(symbol_file).read()
    proc = run_script('deploy.py', '--prefix', trained['prefix'], '--epoch', 2,
                      '--output-prefix', trained['prefix'])
    assert proc.returncode == 1
    assert 'is the checkpoint itself: exporting would replace its training symbol' \
        in error_line(proc)
    assert open(symbol_file).read() == before


def test_demo_json_folder_fails_before_any_detection(trained, tmp_path):
    proc = run_script('demo.py', '--prefix', trained['prefix'], '--json', tmp_path, '--cpu')
    assert proc.returncode == 2
    assert 'argument' not in error_line(proc) and '--json %s is a folder' % tmp_path \
        in error_line(proc)
    assert 'Detection time' not in proc.stdout


def test_a_far_demo_shape_warns(trained, data, tmp_path):
    proc = run_script('demo.py', '--prefix', trained['prefix'], '--epoch', 2, '--data-shape',
                      4 * SIDE, '--images', data['root'], '--ext', '.jpg', '--save-dir', '',
                      '--json', '', '--cpu')
    assert '--data-shape 256 is far from the 64 the model was trained with' in proc.stderr


# ---------------------------------------------------------------- one validation iterator

def test_every_validation_image_counts_once_in_every_pass(data):
    """10 images in batches of 4, three passes: 10 real images each time, in file order (MXNet's
    default round_batch wrapped the last batch around and started the next pass mid-file)."""
    from dataset.imdb import read_imglist
    from dataset.iterator import validation_iter
    expected = [label[:, 0].tolist() for _, label, _ in read_imglist(data['val_lst'])]
    it = validation_iter(data['val_rec'], BATCH, SIDE)
    for _ in range(3):
        it.reset()
        seen = []
        for batch in it:
            for row in batch.label[0].asnumpy()[:BATCH - batch.pad]:
                seen.append(row[row[:, 0] >= 0][:, 0].tolist())
        assert seen == expected


def test_training_validates_through_the_validation_iterator(data, tmp_path, monkeypatch):
    import dataset.iterator
    import train.train_net
    calls = []
    real = dataset.iterator.validation_iter
    monkeypatch.setattr(train.train_net, 'validation_iter',
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    train_net(options(data, tmp_path / 'ssd', val_path=data['val_rec']))
    assert [c[0] for c in calls] == [data['val_rec']]


# ----------------------------------------------------------- naming in resume and finetune

def test_resume_and_finetune_find_the_checkpoints_of_an_underscore_prefix(data, tmp_path):
    prefix = str(tmp_path / 'ssd_')
    expanded = model_io.expand_prefix(prefix, NETWORK, SIDE)
    assert expanded == str(tmp_path / ('ssd_%s_%d' % (NETWORK, SIDE)))
    train_net(options(data, prefix, end_epoch=1))
    assert model_io.saved_epochs(expanded) == [1]
    summary = train_net(options(data, prefix, resume=1, end_epoch=2))
    assert summary['last_checkpoint'] == model_io.params_path(expanded, 2)
    summary = train_net(options(data, prefix, resume='last', end_epoch=3))
    assert summary['last_checkpoint'] == model_io.params_path(expanded, 3)
    summary = train_net(options(data, prefix, finetune=3, end_epoch=4))
    assert summary['last_checkpoint'] == model_io.params_path(expanded, 4)


def test_a_fresh_run_does_not_replace_existing_checkpoints(data, tmp_path):
    prefix = tmp_path / 'ssd'
    train_net(options(data, prefix))
    params = model_io.params_path(str(prefix), 1)
    before = os.path.getmtime(params)
    for resume in (-1, 0):
        with pytest.raises(ValueError, match=r'ssd already has checkpoints \(epochs 1\): pass '
                                             r'--resume last .*a new --prefix, or --overwrite'):
            train_net(options(data, prefix, resume=resume))
    assert os.path.getmtime(params) == before
    train_net(options(data, prefix, resume=1, end_epoch=2))
    train_net(options(data, prefix, overwrite=True))
    assert os.path.getmtime(params) > before
    # the old run's epoch 2 is gone with it: --resume last continues the new run
    assert model_io.saved_epochs(str(prefix)) == [1]


def test_train_cli_reports_a_fresh_run_into_used_prefix_in_one_line(data, tmp_path):
    prefix = tmp_path / 'ssd'
    train_net(options(data, prefix))
    proc = run_script('train.py', *train_args(data, prefix, '--end-epoch', 1))
    assert proc.returncode == 1
    assert 'already has checkpoints (epochs 1)' in error_line(proc)


# ------------------------------------------------------------------ bad values and files

@pytest.mark.parametrize('shape', ['1', '17', '17,64'])
def test_a_data_shape_too_small_for_the_network_is_refused(data, tmp_path, shape):
    proc = run_script('train.py', *train_args(data, tmp_path / 'ssd', '--data-shape', shape))
    assert proc.returncode == 1
    assert 'is too small for mobilenet_0.25: its feature layer conv_14_relu has a stride of ' \
           '32 pixels, so each side needs at least 32' in error_line(proc)


def test_data_shape_rule_in_the_builder():
    from symbol.symbol_factory import get_symbol
    with pytest.raises(ValueError, match='data shape 17x17 is too small'):
        get_symbol(NETWORK, 17, 4)
    assert get_symbol(NETWORK, 32, 4).list_outputs() == ['detection_output']


@pytest.mark.parametrize('command', [['train.py'], ['evaluate.py'], ['demo.py'],
                                     ['-m', 'tools.quantize']])
@pytest.mark.parametrize('value', ['0', '-2'])
def test_batch_size_must_be_positive(command, value):
    script = command if command[0] == '-m' else [os.path.join(ROOT, command[0])]
    proc = subprocess.run([sys.executable] + script + ['--batch-size', value], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 2
    assert "argument --batch-size: expected a positive integer, got '%s'" % value \
        in error_line(proc)


@pytest.mark.parametrize('content', [b'', b'garbage, not an NDArray file', None])
def test_a_broken_pretrained_params_file_is_named(data, tmp_path, content):
    pretrained = str(tmp_path / 'backbone')
    path = model_io.params_path(pretrained, 1)
    if content is None:   # a real file cut in half
        model_io.save_params_file(path, {'w': mx.nd.ones((64, 64))}, {})
        with open(path, 'rb') as f:
            content = f.read()[:300]
    with open(path, 'wb') as f:
        f.write(content)
    with pytest.raises(model_io.ModelError, match='%s: cannot read the parameters' % path):
        train_net(options(data, tmp_path / 'ssd', pretrained=pretrained, epoch=1))
    proc = run_script('train.py', *train_args(data, tmp_path / 'cli', '--pretrained', pretrained,
                                              '--epoch', 1))
    assert proc.returncode == 1
    assert error_line(proc).startswith('error: %s: cannot read the parameters' % path)


def test_evaluate_errors_are_one_line(data, tmp_path, random_model):
    """Missing files, a class count the weights do not have, class ids beyond the model."""
    prefix = random_model.save(tmp_path, shape=SIDE)
    base = ['--prefix', prefix, '--epoch', random_model.epoch, '--network', NETWORK,
            '--data-shape', SIDE, '--cpu', '--output-dir', tmp_path / 'out']
    missing = run_script('evaluate.py', *base, '--num-class', 4, '--rec-path',
                         tmp_path / 'none.rec')
    assert missing.returncode == 1
    assert error_line(missing) == 'error: record file not found: %s' % (tmp_path / 'none.rec')
    no_epoch = run_script('evaluate.py', *base[:2], '--epoch', 9, *base[4:], '--rec-path',
                          data['val_rec'])
    assert 'model file(s) not found: %s' % model_io.params_path(prefix, 9) in error_line(no_epoch)
    wrong_count = run_script('evaluate.py', *base, '--num-class', 5, '--rec-path',
                             data['val_rec'])
    assert wrong_count.returncode == 1
    assert 'does not fit the network (10 problems: conv_6_relu_cls_pred_conv_weight is ' \
           '(20, 64, 3, 3), network needs (24, 64, 3, 3)' in error_line(wrong_count)
    os.makedirs(str(tmp_path / 'two'))
    two = random_model.save(tmp_path / 'two', shape=SIDE, num_classes=2)
    beyond = run_script('evaluate.py', '--prefix', two, '--epoch', random_model.epoch,
                        '--network', NETWORK, '--data-shape', SIDE, '--num-class', 2,
                        '--rec-path', data['val_rec'], '--cpu', '--output-dir', tmp_path / 'o2')
    assert beyond.returncode == 1
    # the validation iterator checks the class ids against the model's class count
    assert error_line(beyond).startswith('error: %s (batch 0): class id ' % data['val_rec'])
    assert 'is not below the number of classes 2 (ids 0..1)' in error_line(beyond)


# ---------------------------------------------------------------------------- unit rules

def test_import_symbol_does_not_load_the_operator_library():
    code = ('import sys, mxnet as mx, symbol, symbol.model_io, symbol.symbol_factory; '
            'print(hasattr(mx.sym, "MultiBoxPrior"))')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, timeout=120)
    assert proc.stdout.strip() == 'False'


def test_settings_flags_over_spec_over_defaults():
    spec = model_io.make_spec(NETWORK, (64, 96), 3, ['a', 'b', 'c'], (1, 2, 3), nms_topk=50,
                              preset_overrides=OVERRIDES)
    settings = model_io.resolve_settings(spec, {'nms_thresh': 0.3, 'network': None}, 'S')
    assert (settings['network'], settings['data_shape'], settings['num_classes']) == \
        (NETWORK, (64, 96), 3)
    assert (settings['nms_thresh'], settings['nms_topk'], settings['mean_pixels']) == \
        (0.3, 50, [1.0, 2.0, 3.0])
    with pytest.raises(model_io.ModelError, match=r'--preset-overrides \{\} contradicts the '
                                                  r'model spec S \(preset_overrides'):
        model_io.resolve_settings(spec, {'preset_overrides': {}}, 'S')
    with pytest.raises(model_io.ModelError, match='--class-names gives 2 names, the model '
                                                  'spec S has 3 classes'):
        model_io.resolve_settings(spec, {'class_names': ['x', 'y']}, 'S')
    without = model_io.resolve_settings(None, {'num_classes': 2}, 'S')
    assert (without['nms_thresh'], without['force_nms'], without['num_classes']) == \
        (0.45, False, 2)


def test_naming():
    assert model_io.expand_prefix('m/ssd_', 'resnet50', (256, 320)) == 'm/ssd_resnet50_256x320'
    assert model_io.deploy_prefix('m/ssd_x_300') == os.path.join('m', 'deploy_ssd_x_300')
    assert (model_io.params_path('p', 7), model_io.symbol_path('p'), model_io.spec_path('p')) \
        == ('p-0007.params', 'p-symbol.json', 'p-model.json')


def test_a_broken_spec_is_named(tmp_path):
    prefix = str(tmp_path / 'm')
    with open(model_io.spec_path(prefix), 'w') as f:
        f.write('{"format": "mxnet-ssd-model", "network": "x"')
    with pytest.raises(model_io.ModelError, match='m-model.json: not a readable model spec'):
        model_io.read_spec(prefix)


def test_export_writes_only_used_params_and_the_spec(tmp_path):
    from symbol.symbol_factory import get_symbol
    net = get_symbol(NETWORK, SIDE, 4)
    shapes = dict(zip(net.list_arguments(), net.infer_shape(data=(1, 3, SIDE, SIDE))[0]))
    args = {n: mx.nd.ones(s) for n, s in shapes.items() if n != 'data'}
    args['leftover'] = mx.nd.zeros(2)
    spec = model_io.make_spec(NETWORK, SIDE, 4)
    paths = model_io.export_model(str(tmp_path / 'x'), 3, net, args, {}, spec)
    assert paths == (str(tmp_path / 'x-symbol.json'), str(tmp_path / 'x-0003.params'))
    loaded, _ = model_io.load_params(str(tmp_path / 'x'), 3)
    assert 'leftover' not in loaded and len(loaded) == len(args) - 1
    assert model_io.read_spec(str(tmp_path / 'x')) == json.loads(json.dumps(spec))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(model_io.PARTIAL_SUFFIX)]
    for name, value in loaded.items():
        np.testing.assert_array_equal(value.asnumpy(), 1)
