"""Training building blocks against hand-computed values: the loss metric, the learning-rate
schedule of resumed runs, atomic checkpoints, parameter sources and the command line."""
import math
import os

import mxnet as mx
import numpy as np
import pytest

from train import checkpoint, cli
from train.metric import MultiBoxMetric
from train.optim import cosine_schedule, lr_schedule, make_lr_schedule, optimizer_params
from train.options import TrainOptions
from train.params import choose_param_source, frozen_by_pattern, split_by_fit
from train.recipes import DEMO, recipe_argv
from train.train_net import (augmentation, log_file_path, resolve_class_names,
                             training_symbol)

# ------------------------------------------------------------------------------------ metric

def metric_inputs():
    # 1 image, background + 2 classes, 4 anchors; anchor 2 is ignored (-1).
    cls_prob = np.array([[[0.1, 0.7, 0.3, 0.2],
                          [0.6, 0.2, 0.3, 0.3],
                          [0.3, 0.1, 0.4, 0.5]]], np.float32)
    cls_label = np.array([[1, 0, -1, 2]], np.float32)
    loc_loss = np.array([[0.5, 0.0, 0.25, 0.0] + [0.0] * 12], np.float32)
    det = np.zeros((1, 4, 6), np.float32)
    return [mx.nd.array(a) for a in (cls_prob, loc_loss, cls_label, det)]


def test_multibox_metric_matches_hand_computed_losses():
    metric = MultiBoxMetric()
    metric.update([mx.nd.zeros((1, 1, 6))], metric_inputs())
    # targets: anchor0 class 1 (p=.6), anchor1 background (p=.7), anchor3 class 2 (p=.5)
    expected_ce = -(math.log(0.6) + math.log(0.7) + math.log(0.5)) / 3
    names, values = metric.get()
    assert names == ['CrossEntropy', 'SmoothL1']
    assert values == pytest.approx([expected_ce, 0.75 / 3], rel=1e-5)
    assert metric.last_batch == pytest.approx((expected_ce, 0.25), rel=1e-5)


def test_multibox_metric_local_window_and_epoch_totals():
    metric = MultiBoxMetric()
    metric.update(None, metric_inputs())
    metric.reset_local()
    assert all(math.isnan(v) for v in metric.get()[1])   # empty Speedometer window
    metric.update(None, metric_inputs())
    assert metric.get()[1] == pytest.approx(metric.get_global()[1])
    assert metric.global_num_inst == 6
    metric.reset()
    assert metric.global_num_inst == 0


def test_metric_reports_nan_loss_of_the_batch():
    inputs = metric_inputs()
    inputs[0][0, 1, 0] = float('nan')
    metric = MultiBoxMetric()
    metric.update(None, inputs)
    assert math.isnan(metric.last_batch[0]) and np.isfinite(metric.last_batch[1])


# ------------------------------------------------------------------------- schedule, optimizer

def test_lr_schedule_from_scratch_steps_at_epoch_boundaries():
    lr, scheduler = lr_schedule(0.1, (2, 4), 0.1, epoch_size=10, begin_epoch=0)
    scheduler.base_lr = lr
    assert lr == 0.1 and scheduler.step == [20, 40]
    assert scheduler(20) == pytest.approx(0.1) and scheduler(21) == pytest.approx(0.01)
    assert scheduler(41) == pytest.approx(0.001)


def test_lr_schedule_of_resumed_run_is_shifted():
    lr, scheduler = lr_schedule(0.1, (2, 4), 0.1, epoch_size=10, begin_epoch=3)
    scheduler.base_lr = lr
    assert lr == pytest.approx(0.01) and scheduler.step == [10]   # epoch 4 is 1 epoch away
    assert scheduler(11) == pytest.approx(0.001)
    assert lr_schedule(0.1, (2, 4), 0.1, 10, begin_epoch=5) == (pytest.approx(0.001), None)
    assert lr_schedule(0.1, (2, 4), 1.0, 10, 0) == (0.1, None)


def test_cosine_schedule_halves_midway_and_ends_at_zero():
    lr, scheduler = cosine_schedule(0.1, epoch_size=10, begin_epoch=0, end_epoch=4)
    assert lr == 0.1 and scheduler(0) == pytest.approx(0.1)
    assert scheduler(10) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))   # epoch 1 of 4
    assert scheduler(20) == pytest.approx(0.05)
    assert scheduler(40) == pytest.approx(0.0, abs=1e-12)


def test_cosine_schedule_of_resumed_run_continues_the_curve():
    whole = cosine_schedule(0.1, 10, 0, 4)[1]
    resumed = cosine_schedule(0.1, 10, begin_epoch=3, end_epoch=4)[1]   # counts from 0 again
    assert [resumed(n) for n in (0, 5, 10)] == pytest.approx([whole(n) for n in (30, 35, 40)])
    assert cosine_schedule(0.1, 10, begin_epoch=4, end_epoch=4) == (0.1, None)


def test_make_lr_schedule_picks_the_kind():
    assert make_lr_schedule('step', 0.1, (2,), 0.1, 10, 0, 4)[1].step == [20]
    assert make_lr_schedule('cosine', 0.1, (2,), 0.1, 10, 0, 4)[1](20) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown --lr-schedule 'linear'.*step, cosine"):
        make_lr_schedule('linear', 0.1, (2,), 0.1, 10, 0, 4)


def test_optimizer_params_per_optimizer():
    sgd = optimizer_params('sgd', 0.1, 0.9, 5e-4, None, 0.5)
    assert sgd == {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 5e-4, 'rescale_grad': 0.5}
    assert 'momentum' not in optimizer_params('adam', 0.1, 0.9, 5e-4, None, 1.0)
    assert 'learning_rate' not in optimizer_params('adadelta', 0.1, 0.9, 5e-4, None, 1.0)
    with pytest.raises(ValueError, match='unknown --optimizer .*nadam.*adadelta, adam'):
        optimizer_params('nadam', 0.1, 0.9, 5e-4, None, 1.0)


# -------------------------------------------------------------------------------- checkpoint

def tiny_params(value):
    return {'w': mx.nd.full((2, 3), value)}, {'bn_moving_mean': mx.nd.full((3,), value + 1)}


def test_checkpoint_round_trip_in_mxnet_format(tmp_path):
    prefix = str(tmp_path / 'run' / 'ssd')
    net = mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=2, name='fc')
    arg, aux = tiny_params(1.5)
    checkpoint.save_checkpoint(prefix, 3, net, arg, aux)
    symbol, arg2, aux2 = mx.model.load_checkpoint(prefix, 3)   # MXNet's own loader
    assert symbol.list_arguments() == net.list_arguments()
    assert np.array_equal(arg2['w'].asnumpy(), arg['w'].asnumpy())
    assert np.array_equal(aux2['bn_moving_mean'].asnumpy(), aux['bn_moving_mean'].asnumpy())
    assert checkpoint.load_params(prefix, 3)[1].keys() == {'bn_moving_mean'}


def test_interrupted_write_leaves_previous_checkpoint_intact(tmp_path):
    prefix = str(tmp_path / 'ssd')
    checkpoint.save_params_file(checkpoint.params_path(prefix, 2), *tiny_params(2.0))

    def killed_midway(path):
        with open(path, 'wb') as f:
            f.write(b'half a file')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(checkpoint.params_path(prefix, 2), killed_midway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(checkpoint.params_path(prefix, 3), killed_midway)
    assert checkpoint.load_params(prefix, 2)[0]['w'].asnumpy().max() == 2.0
    assert checkpoint.saved_epochs(prefix) == [2] and checkpoint.latest_epoch(prefix) == 2
    checkpoint.remove_partial_files(prefix)
    assert sorted(os.listdir(tmp_path)) == ['ssd-0002.params']


def test_missing_checkpoint_errors_name_the_file_and_saved_epochs(tmp_path):
    prefix = str(tmp_path / 'ssd')
    with pytest.raises(checkpoint.CheckpointError, match=r'ssd-NNNN\.params found'):
        checkpoint.latest_epoch(prefix)
    checkpoint.save_params_file(checkpoint.params_path(prefix, 1), *tiny_params(0))
    checkpoint.save_params_file(checkpoint.params_path(prefix, 10), *tiny_params(0))
    with pytest.raises(checkpoint.CheckpointError, match=r'ssd-0005\.params; epochs .*: 1, 10'):
        checkpoint.load_params(prefix, 5)


# ------------------------------------------------------------------------- parameter sources

def test_freeze_pattern_and_shape_filter():
    net = mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=2, name='conv1_1')
    net = mx.sym.FullyConnected(net, num_hidden=2, name='head_pred')
    assert frozen_by_pattern(net, '^conv1_') == ['conv1_1_weight', 'conv1_1_bias']
    assert frozen_by_pattern(net, '') == []
    with pytest.raises(ValueError, match=r"--freeze '\(' is not a valid regular expression"):
        frozen_by_pattern(net, '(')
    fitting, rejected = split_by_fit({'a': mx.nd.zeros((2, 2)), 'b': mx.nd.zeros(3),
                                      'c': mx.nd.zeros(1)}, {'a': (2, 2), 'b': (4,)})
    assert list(fitting) == ['a']
    assert rejected == {'b': 'shape (3,), network needs (4,)', 'c': 'not in the network'}


def test_pretrained_vgg16_reduced_file_fills_the_backbone(tmp_path):
    from symbol.symbol_factory import get_symbol_train
    net = get_symbol_train('vgg16_reduced', 300, 20)
    prefix = str(tmp_path / 'vgg16_reduced')
    arrays = {'conv1_1_weight': mx.nd.ones((64, 3, 3, 3)),
              'fc7_weight': mx.nd.ones((1024, 1024, 1, 1)),
              'fc8_weight': mx.nd.ones((1000, 1024, 1, 1)),   # ImageNet classifier: unused
              'conv5_3_bias': mx.nd.ones(7)}                  # wrong shape: skipped
    checkpoint.save_params_file(checkpoint.params_path(prefix, 1), arrays, {})
    opts = TrainOptions(pretrained=prefix, epoch=1, begin_epoch=3)
    source = choose_param_source(opts, opts.prefix, net,
                                 {'data': (1, 3, 300, 300), 'label': (1, 2, 6)})
    assert sorted(source.arg_params) == ['conv1_1_weight', 'fc7_weight']
    assert (source.begin_epoch, source.fixed_names, source.resumed) == (3, [], False)
    with pytest.raises(checkpoint.CheckpointError, match='vgg16_reduced-0002.params'):
        choose_param_source(opts.replace(epoch=2), opts.prefix, net,
                            {'data': (1, 3, 300, 300), 'label': (1, 2, 6)})


def test_class_names_and_counts(tmp_path):
    assert resolve_class_names(None, 20)[:2] == ['aeroplane', 'bicycle']
    assert resolve_class_names(None, 3) == ['class_0', 'class_1', 'class_2']
    assert resolve_class_names('synthetic', 4) == ['circle', 'square', 'triangle', 'cross']
    with pytest.raises(ValueError, match='--class-names gives 2 names .a, b. but --num-class is 3'):
        resolve_class_names('a,b', 3)
    assert log_file_path('out/ssd', 'train.log', 0) == os.path.join('out', 'train.log')
    assert log_file_path('out/ssd', 'train.log', 2) == os.path.join('out', 'train.worker2.log')


# ------------------------------------------------------------------------------ command line

def test_command_line_flags_map_to_options():
    args = cli.parse_args([
        '--no-voc07', '--force-nms', '--resume', 'last', '--data-shape', '256,320',
        '--lr-steps', '3, 5', '--lr-factor', '0.5', '--mean-r', '1', '--cpu', '--freeze', ''])
    opts = cli.options_from_args(args)
    assert isinstance(opts, TrainOptions)
    assert (opts.voc07, opts.force_nms, opts.resume, opts.data_shape) == (False, True, 'last',
                                                                          (256, 320))
    assert (opts.lr_steps, opts.lr_factor, opts.cpu, opts.freeze) == ((3, 5), 0.5, True, '')
    assert opts.lr_schedule == 'step'
    assert cli.options_from_args(cli.parse_args(['--lr-schedule', 'cosine'])).lr_schedule \
        == 'cosine'
    assert opts.mean_pixels == (1.0, 117, 104)
    defaults = cli.options_from_args(cli.parse_args([]))
    assert defaults == TrainOptions()
    assert (defaults.lr, defaults.batch_size, defaults.end_epoch, defaults.lr_steps,
            defaults.data_shape, defaults.voc07) == (0.004, 32, 240, (80, 160), 300, True)


def test_demo_recipe_is_a_valid_train_command():
    data = {'train_rec': 'd/train.rec', 'val_rec': 'd/val.rec', 'label_width': 32}
    opts = cli.options_from_args(cli.parse_args(recipe_argv(DEMO, data, 'out/ssd_')))
    assert (opts.network, opts.data_shape, opts.end_epoch, opts.lr_steps, opts.lr_factor) == (
        DEMO.network, DEMO.data_shape, DEMO.epochs, DEMO.lr_steps, DEMO.lr_factor)
    aug = augmentation(opts)   # raises on a setting ImageDetRecordIter does not know
    assert aug['rand_crop_prob'] == 0 and aug['rand_mirror_prob'] == 0.5


def test_preset_overrides_reach_the_symbol_builder():
    args = cli.parse_args(['--network', 'mobilenet_0.25', '--data-shape', '128', '--num-class',
                           '4', '--preset-overrides', '{"sizes": [0.2, 0.3], "clip": true}'])
    opts = cli.options_from_args(args)
    assert opts.preset_overrides == {'sizes': [0.2, 0.3], 'clip': True}
    net = training_symbol(opts)
    anchors = net.get_internals()['multibox_anchors_output']
    executor = anchors.simple_bind(mx.cpu(), data=(1, 3, 128, 128), grad_req='null')
    boxes = executor.forward()[0].asnumpy()[0]   # anchors depend on shapes only
    last_layer_widths = (boxes[:, 2] - boxes[:, 0])[-4:]   # the 1x1 map: sizes, then ratios
    assert np.allclose(last_layer_widths, [0.2, 0.3, 0.2 * 2 ** 0.5, 0.2 / 2 ** 0.5], atol=1e-6)
    with pytest.raises(ValueError, match='--preset-overrides .*unknown SSD config field.*anchor'):
        training_symbol(opts.replace(preset_overrides={'anchor': 1}))
    with pytest.raises(ValueError, match=r'--preset-overrides \{"sizes": \[\[0.2, 0.3\]\]\}: '
                                         'sizes has 1 entries for 5 feature layers'):
        training_symbol(opts.replace(preset_overrides={'sizes': [[0.2, 0.3]]}))


def test_augment_overrides_replace_the_training_augmentation():
    from config.config import cfg
    opts = cli.options_from_args(cli.parse_args(
        ['--augment-overrides', '{"rand_pad_prob": 0, "max_random_hue": 9}']))
    aug = augmentation(opts)
    assert (aug['rand_pad_prob'], aug['max_random_hue']) == (0, 9)
    assert {k: v for k, v in aug.items() if k not in ('rand_pad_prob', 'max_random_hue')} == \
        {k: v for k, v in cfg.train.items() if k not in ('rand_pad_prob', 'max_random_hue')}
    assert augmentation(TrainOptions()) == cfg.train
    with pytest.raises(ValueError, match='--augment-overrides: unknown setting.*rand_zoom.*'
                                         'known: .*rand_pad_prob'):
        augmentation(opts.replace(augment_overrides={'rand_zoom': 1}))


@pytest.mark.parametrize('argv, message', [
    (['--augment-overrides', '0'], 'expected a JSON object'),
    (['--resume', 'newest'], "expected an epoch number or 'last'"),
    (['--data-shape', '1,2,3'], 'expected SIZE or HEIGHT,WIDTH'),
    (['--optimizer', 'nadam'], 'invalid choice'),
    (['--voc07', 'False'], 'unrecognized arguments: False'),
    (['--preset-overrides', '[1, 2]'], 'expected a JSON object'),
    (['--preset-overrides', '{sizes: 1}'], 'not valid JSON'),
])
def test_command_line_rejects_bad_values(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert message in capsys.readouterr().err


def test_missing_training_data_is_a_clear_error(tmp_path, capsys):
    status = cli.main(['--cpu', '--log', '', '--prefix', str(tmp_path / 'ssd'),
                       '--train-path', str(tmp_path / 'missing.rec')])
    assert status == 1
    assert capsys.readouterr().err == 'error: training record file not found: %s (--train-path; ' \
        'prepare one with tools/prepare_dataset.py)\n' % (tmp_path / 'missing.rec')
