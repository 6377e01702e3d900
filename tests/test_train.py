"""End-to-end training on a small synthetic dataset with mobilenet_0.25 at a small input size:
learning, SIGKILL + resume, finetuning to another class count, the freeze regex and the NaN
guard.  (Distributed training: test_train_dist.py.)"""
import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from config.config import cfg
from dataset import synthetic
from train import checkpoint
from train.metric import LOC_LOSS as LOC_LOSS_OUTPUT
from train.history import curves_path, history_path
from train.options import TrainOptions
from train.train_net import TrainingDiverged, train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_SHAPE = 96
NUM_TRAIN, NUM_VAL = 32, 16
BATCH = 8
BATCHES_PER_EPOCH = NUM_TRAIN // BATCH
# From scratch, mobilenet_0.25 needs far more than a test's few minutes to generalise to new
# images (bench/train.py measures that); what a short run can show is that it learns: the
# learning run validates on its own (unaugmented) training images.  Measured (2-core machine,
# deterministic with the seeds): CrossEntropy 3.24 -> 0.25, SmoothL1 1.08 -> 0.27 from the first
# to the last epoch; validation mAP 0.003-0.03 in epochs 1-10, then 0.09-0.82 (last 5: max 0.82).
LEARN_EPOCHS = 25
MIN_MAP = 0.3
SIGKILL_EPOCHS = 4
NO_AUGMENTATION = dict(cfg.valid, shuffle=True)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return synthetic.prepare(str(tmp_path_factory.mktemp('synthetic')), num_train=NUM_TRAIN,
                             num_val=NUM_VAL, seed=3, data_shape=DATA_SHAPE, progress=False)


def options(data, prefix, **changes):
    base = TrainOptions(
        network='mobilenet_0.25', train_path=data['train_rec'], val_path=data['val_rec'],
        num_class=4, class_names='synthetic', data_shape=DATA_SHAPE, batch_size=BATCH,
        label_width=data['label_width'], pretrained='', cpu=True, optimizer='adam', lr=0.004,
        wd=5e-4, lr_steps=(), prefix=str(prefix), checkpoint_period=1, frequent=1000,
        end_epoch=1, seed=7)
    return base.replace(**changes)


def learned_args(prefix, epoch):
    return {k: v.asnumpy() for k, v in checkpoint.load_params(prefix, epoch)[0].items()}


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """A short run from scratch; later tests start from its checkpoints."""
    prefix = tmp_path_factory.mktemp('learn') / 'ssd'
    return train_net(options(data, prefix, end_epoch=LEARN_EPOCHS, frequent=2,
                             val_path=data['train_rec'], train_aug=NO_AUGMENTATION))


def test_short_training_lowers_both_losses_and_learns(trained):
    epochs = trained['epochs']
    assert [e['epoch'] for e in epochs] == list(range(1, LEARN_EPOCHS + 1))
    first, last = epochs[0], epochs[-1]
    assert last['CrossEntropy'] < 0.4 * first['CrossEntropy']
    assert last['SmoothL1'] < 0.5 * first['SmoothL1']
    late_map = max(e['mAP'] for e in epochs[-5:])
    assert late_map > MIN_MAP, [round(e['mAP'], 3) for e in epochs]
    assert set(e for e in last if e.startswith('AP ')) == {'AP circle', 'AP square',
                                                            'AP triangle', 'AP cross'}


def test_outputs_beside_the_prefix(trained):
    prefix = trained['prefix']
    folder = os.path.dirname(prefix)
    assert trained['last_checkpoint'] == checkpoint.params_path(prefix, LEARN_EPOCHS)
    assert checkpoint.saved_epochs(prefix) == list(range(1, LEARN_EPOCHS + 1))
    symbol = mx.sym.load(checkpoint.symbol_path(prefix))
    assert symbol.list_outputs() == ['cls_prob_output', 'loc_loss_output', 'cls_label_output',
                                     'det_out_output']   # the training symbol, as originally
    with open(os.path.join(folder, 'train.log')) as f:
        log = f.read()
    assert 'Epoch[0] Batch [0-2]\tSpeed: ' in log   # Speedometer every --frequent batches
    assert 'Epoch[%d] Validation-mAP=' % (LEARN_EPOCHS - 1) in log
    assert 'Epoch[0] Train-CrossEntropy=' in log and 'Validation-triangle=' in log
    with open(history_path(prefix)) as f:
        assert json.load(f) == trained['epochs']
    with open(curves_path(prefix), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def run_train_script(data, prefix, *extra, **popen_kwargs):
    opts = options(data, prefix)
    argv = [sys.executable, os.path.join(ROOT, 'train.py'), '--network', opts.network,
            '--train-path', opts.train_path, '--val-path', opts.val_path, '--num-class', '4',
            '--class-names', 'synthetic', '--data-shape', str(DATA_SHAPE),
            '--batch-size', str(BATCH), '--label-width', str(opts.label_width), '--pretrained', '',
            '--cpu', '--optimizer', 'adam', '--lr', '0.004', '--lr-steps', '',
            '--prefix', str(prefix), '--checkpoint-period', '1', '--seed', '7'] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen_kwargs)


def wait_for_checkpoint(prefix, epoch, process, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(checkpoint.params_path(prefix, epoch)):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, 'no checkpoint %d after %d s' % (epoch, timeout)
        time.sleep(0.05)


def test_resume_after_sigkill_finishes_the_same_epochs(data, tmp_path):
    prefix = tmp_path / 'ssd'
    schedule = ('--end-epoch', str(SIGKILL_EPOCHS), '--lr-steps', '3')   # lr x0.1 after epoch 3
    process = run_train_script(data, prefix, *schedule)
    wait_for_checkpoint(prefix, 2, process)
    time.sleep(0.5)   # somewhere in epoch 3 (training, validating or writing)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = checkpoint.saved_epochs(str(prefix))
    assert done[:2] == [1, 2] and SIGKILL_EPOCHS not in done
    killed_at = done[-1]
    resumed = run_train_script(data, prefix, *schedule, '--resume', 'last')
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert 'Resume training from %s' % checkpoint.params_path(str(prefix), killed_at) in output
    assert 'Loaded the optimizer state' in output
    assert checkpoint.saved_epochs(str(prefix)) == list(range(1, SIGKILL_EPOCHS + 1))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(checkpoint.PARTIAL_SUFFIX)]
    with open(history_path(str(prefix))) as f:
        history = json.load(f)
    assert [e['epoch'] for e in history] == list(range(1, SIGKILL_EPOCHS + 1))
    # the optimizer went on counting updates: the step after epoch 3 happened as planned
    assert [e['lr'] for e in history] == pytest.approx([0.004, 0.004, 0.004, 0.0004])
    assert 'Epoch[%d] Train-CrossEntropy' % killed_at in output
    assert 'Epoch[%d] Train-CrossEntropy' % (killed_at - 1) not in output


def test_cosine_schedule_drives_the_optimizer(data, tmp_path):
    summary = train_net(options(data, tmp_path / 'ssd', end_epoch=3, lr_schedule='cosine',
                                val_path='', checkpoint_period=3))
    # recorded after each epoch's last update: 0.004 * (1 + cos(pi * epoch / 3)) / 2
    assert [e['lr'] for e in summary['epochs']] == pytest.approx([0.003, 0.001, 0.0], abs=1e-9)


def test_finetune_to_another_class_count_trains_only_the_heads(data, trained, tmp_path):
    prefix = str(tmp_path / 'ssd')
    for suffix in ('-symbol.json', '-0002.params'):   # the 4-class model at epoch 2
        os.link(trained['prefix'] + suffix, prefix + suffix)
    before = learned_args(prefix, 2)
    result = train_net(options(data, prefix, finetune=2, end_epoch=3, num_class=5,
                               class_names='circle,square,triangle,cross,star'))
    assert result['last_checkpoint'] == checkpoint.params_path(prefix, 3)
    after = learned_args(prefix, 3)
    heads = [k for k in after if 'pred' in k]
    cls_heads = [k for k in heads if '_cls_pred_conv_weight' in k]
    assert len(cls_heads) == 5   # (classes + background) x anchors filters per feature layer
    assert all(after[k].shape[0] * 5 == before[k].shape[0] * 6 for k in cls_heads)
    for name in after:
        if 'pred' in name:
            assert before[name].shape != after[name].shape or not np.array_equal(
                before[name], after[name]), name
        else:
            assert np.array_equal(before[name], after[name]), name


def test_freeze_regex_keeps_weights_bit_identical(data, trained, tmp_path):
    prefix = str(tmp_path / 'ssd')
    for suffix in ('-symbol.json', '-0001.params'):
        os.link(trained['prefix'] + suffix, prefix + suffix)
    before = learned_args(prefix, 1)
    train_net(options(data, prefix, resume=1, end_epoch=2, freeze='^conv_(1|2|2_dw)_'))
    after = learned_args(prefix, 2)
    frozen = [k for k in after if k.startswith(('conv_1_', 'conv_2_', 'conv_2_dw_'))]
    assert len(frozen) == 9   # 3 layers x (conv weight, BN gamma, BN beta)
    for name in after:
        unchanged = np.array_equal(before[name], after[name])
        if name in frozen:
            assert unchanged, name
        elif not name.endswith('_gamma'):   # fix_gamma BatchNorm: gamma is not learned
            assert not unchanged, name


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    # A NaN pixel would not do: ReLU turns NaN into 0.  Poison the loss output itself, as a
    # diverging run would, at Epoch[1] Batch[2].
    poison_at, calls = BATCHES_PER_EPOCH + 2, []
    forward_backward = mx.mod.Module.forward_backward

    def forward_backward_with_nan_loss(module, batch):
        forward_backward(module, batch)
        if len(calls) == poison_at:
            module.get_outputs()[LOC_LOSS_OUTPUT][:] = float('nan')
        calls.append(batch)

    monkeypatch.setattr(mx.mod.Module, 'forward_backward', forward_backward_with_nan_loss)
    prefix = str(tmp_path / 'ssd')
    with pytest.raises(TrainingDiverged) as error:
        train_net(options(data, prefix, end_epoch=3))
    message = str(error.value)
    assert 'non-finite loss at Epoch[1] Batch[2] (CrossEntropy=' in message
    assert 'SmoothL1=nan' in message
    assert 'the last good checkpoint %s is kept' % checkpoint.params_path(prefix, 1) in message
    assert len(calls) == poison_at + 1                      # stopped at the poisoned batch
    assert checkpoint.saved_epochs(prefix) == [1]
    assert all(np.isfinite(v).all() for v in learned_args(prefix, 1).values())


def test_non_finite_weights_are_never_checkpointed(data, tmp_path, monkeypatch):
    # A NaN weight early in the backbone is hidden from the losses by the ReLUs; the epoch's
    # checkpoint must still be refused.
    calls = []
    forward_backward = mx.mod.Module.forward_backward

    def forward_backward_poisoning_a_weight(module, batch):
        if len(calls) == BATCHES_PER_EPOCH + 1:
            shape = module.get_params()[0]['conv_1_conv2d_weight'].shape
            module.set_params({'conv_1_conv2d_weight': mx.nd.full(shape, float('nan'))}, {},
                              allow_missing=True, force_init=True)
        forward_backward(module, batch)
        calls.append(batch)

    monkeypatch.setattr(mx.mod.Module, 'forward_backward', forward_backward_poisoning_a_weight)
    prefix = str(tmp_path / 'ssd')
    with pytest.raises(TrainingDiverged, match=r'parameters became non-finite by the end of '
                       r'Epoch\[1\] \(.*conv_1_conv2d_weight\).*last good checkpoint '
                       r'.*-0001.params'):
        train_net(options(data, prefix, end_epoch=3, val_path=''))
    assert checkpoint.saved_epochs(prefix) == [1]


def test_a_kill_right_after_a_checkpoint_keeps_that_epochs_record(data, tmp_path, monkeypatch):
    """The history record of an epoch is written before its checkpoint, so the window
    between the two writes can no longer lose the record of a checkpointed epoch."""
    prefix = str(tmp_path / 'ssd')
    real_save = checkpoint.save_checkpoint

    def save_then_die(prefix_, epoch, *args, **kwargs):
        real_save(prefix_, epoch, *args, **kwargs)
        if epoch == 2:
            raise KeyboardInterrupt('killed between the checkpoint and what follows it')
    monkeypatch.setattr(checkpoint, 'save_checkpoint', save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_net(options(data, prefix, end_epoch=3))
    assert checkpoint.saved_epochs(prefix) == [1, 2]
    with open(history_path(prefix)) as f:
        assert [e['epoch'] for e in json.load(f)] == [1, 2]
    monkeypatch.setattr(checkpoint, 'save_checkpoint', real_save)
    summary = train_net(options(data, prefix, end_epoch=3, resume='last'))
    assert [e['epoch'] for e in summary['epochs']] == [1, 2, 3]


def test_random_sigkills_always_resume_to_the_same_final_epoch(data, tmp_path):
    """SIGKILL at seeded random moments of a run (start-up, training, validation, writing),
    each time resumed with --resume last: the run ends with every checkpoint and one history
    record per epoch, as an uninterrupted run would."""
    prefix = tmp_path / 'ssd'
    schedule = ('--end-epoch', str(SIGKILL_EPOCHS))
    rng = np.random.RandomState(11)
    kills = 0
    for attempt in range(12):
        resume = ('--resume', 'last') if checkpoint.saved_epochs(str(prefix)) else ()
        process = run_train_script(data, prefix, *schedule, *resume)
        try:
            process.wait(timeout=rng.uniform(2.0, 9.0) if kills < 3 else 300)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        output = process.stdout.read()
        assert process.returncode == 0, output
        break
    assert kills == 3, 'the run finished before all kills happened'
    assert checkpoint.saved_epochs(str(prefix)) == list(range(1, SIGKILL_EPOCHS + 1))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(checkpoint.PARTIAL_SUFFIX)]
    with open(history_path(str(prefix))) as f:
        assert [e['epoch'] for e in json.load(f)] == list(range(1, SIGKILL_EPOCHS + 1))


def test_training_checks_its_labels_before_the_first_epoch(data, tmp_path):
    prefix = str(tmp_path / 'ssd')
    with pytest.raises(ValueError, match=r'cannot train a 2-class network') as error:
        train_net(options(data, prefix, num_class=2, class_names='a,b'))
    assert 'class id' in str(error.value)
    assert not os.path.exists(tmp_path / 'ssd-symbol.json')   # stopped before any work
