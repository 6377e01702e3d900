"""SSD training with ``mx.mod.Module``: data, network, parameter sources, then the epoch loop.

``train_net(TrainOptions(...))`` trains, validates (VOC mAP) after every epoch, writes
checkpoints atomically every ``checkpoint_period`` epochs and at the end, logs to
``<dirname(prefix)>/<log>`` and keeps ``<prefix>-history.json`` / ``<prefix>-curves.png`` up to
date.  A non-finite loss stops training before the bad update is applied
(``TrainingDiverged``).  With a ``dist_*`` kvstore every worker trains on its own shard of
the record file; worker 0 validates and writes the checkpoints.
"""
import contextlib
import hashlib
import json
import logging
import os
import random
import time

import mxnet as mx
import numpy as np

from config.cli import contexts
from config.config import cfg
from dataset.analysis import preflight_check
from dataset.checks import check_record_file
from dataset.imdb import load_class_names
from dataset.iterator import DetRecordIter, validation_iter
from evaluate.eval_metric import MApMetric, VOC07MApMetric
from symbol import model_io
from symbol.symbol_factory import get_symbol_train

from . import checkpoint
from .history import TrainingHistory
from .metric import MultiBoxMetric
from .optim import make_lr_schedule, optimizer_params
from .options import VOC_NUM_CLASSES
from .params import RESUME_LAST, choose_param_source, frozen_by_pattern

logger = logging.getLogger(__name__)

DET_OUTPUT_INDEX = 3   # det_out among the training symbol's outputs
LOG_FORMAT = '%(asctime)s %(levelname)s %(message)s'
DIST_ENVIRONMENT = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                    'DMLC_NUM_WORKER')


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the message says where and which
    checkpoint is the last good one."""


# ----------------------------------------------------------------------------- set-up helpers

def create_kvstore(kind):
    """(kvstore for Module, rank, number of workers).  Local stores are passed by name, so a
    single device needs none; distributed ones need the ps-lite environment."""
    if not kind.startswith('dist'):
        return kind, 0, 1
    missing = [name for name in DIST_ENVIRONMENT if name not in os.environ]
    if missing:
        raise ValueError('--kv-store %s needs the ps-lite environment (%s not set); start the '
                         'workers with tools/launch.py' % (kind, ', '.join(missing)))
    store = mx.kv.create(kind)
    return store, store.rank, store.num_workers


def resolve_contexts(gpus, cpu):
    """As ``config.cli.contexts``, except that --gpus on a machine without GPUs trains on the
    CPU with a warning (train.py's original default is --gpus 0)."""
    if not cpu and gpus.strip() and mx.context.num_gpus() == 0:
        logger.warning('--gpus %s: this MXNet build sees no GPU; training on the CPU', gpus)
        cpu = True
    return contexts(gpus, cpu)


def resolve_class_names(class_names, num_class):
    if class_names is None or class_names == '':
        if num_class == VOC_NUM_CLASSES:
            return load_class_names('pascal_voc')
        return ['class_%d' % i for i in range(num_class)]
    names = load_class_names(class_names)
    if len(names) != num_class:
        raise ValueError('--class-names gives %d names (%s) but --num-class is %d'
                         % (len(names), ', '.join(names[:5]) + (', ...' if len(names) > 5 else ''),
                            num_class))
    return names


def check_data(opts):
    """Images in the training record file, after checking that the record files are whole and
    that their labels fit the network (class ids, label width, degenerate boxes): a problem
    stops the run here, with every bad record named, instead of as a shape error or a NaN
    loss epochs later."""
    if not os.path.isfile(opts.train_path):
        raise FileNotFoundError('training record file not found: %s (--train-path; prepare one '
                                'with tools/prepare_dataset.py)' % opts.train_path)
    num_example = check_record_file(opts.train_path)
    for path in (opts.train_path, opts.val_path):
        if path:
            preflight_check(path, opts.num_class, opts.label_width)
    return num_example


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def log_file_path(prefix, log_name, rank):
    if not log_name:
        return None
    if rank > 0:
        stem, ext = os.path.splitext(log_name)
        log_name = '%s.worker%d%s' % (stem, rank, ext or '.log')
    return os.path.join(os.path.dirname(prefix) or '.', log_name)


@contextlib.contextmanager
def training_log(path):
    """Root logger at INFO (Speedometer logs there), copied to ``path`` while training."""
    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.INFO)
    handler = None
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous_level)


def parameter_digest(arg_params):
    """SHA-1 of the learned parameters (names and bytes), to compare workers or runs."""
    digest = hashlib.sha1()
    for name in sorted(arg_params):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arg_params[name].asnumpy()).tobytes())
    return digest.hexdigest()


def training_symbol(opts):
    try:
        return get_symbol_train(opts.network, opts.data_shape, opts.num_class,
                                nms_thresh=opts.nms_thresh, force_suppress=opts.force_nms,
                                nms_topk=opts.nms_topk,
                                minimum_negative_samples=opts.min_neg_samples,
                                **(opts.preset_overrides or {}))
    except (TypeError, ValueError) as err:   # unknown preset field or inconsistent values
        if not opts.preset_overrides:
            raise
        raise ValueError('--preset-overrides %s: %s' % (json.dumps(opts.preset_overrides), err))


def augmentation(opts):
    """ImageDetRecordIter keywords of the training data: ``cfg.train`` (or ``opts.train_aug``)
    with ``opts.augment_overrides`` applied."""
    aug = dict(cfg.train if opts.train_aug is None else opts.train_aug)
    overrides = opts.augment_overrides or {}
    unknown = sorted(set(overrides) - set(aug))
    if unknown:
        raise ValueError('--augment-overrides: unknown setting(s) %s; known: %s'
                         % (', '.join(unknown), ', '.join(sorted(aug))))
    aug.update(overrides)
    return aug


def is_fresh_run(opts):
    return not (opts.resume == RESUME_LAST or int(opts.resume) > 0 or opts.finetune > 0)


def refuse_to_replace(prefix, opts):
    """A fresh run would replace the checkpoints and history of an earlier one: stop unless
    the user asked for that (``--overwrite``), and then remove the old checkpoints first."""
    epochs = model_io.saved_epochs(prefix)
    if not epochs or not is_fresh_run(opts):
        return
    if not opts.overwrite:
        raise ValueError('%s already has checkpoints (epochs %s): pass --resume last (or '
                         '--resume N) to continue that run, a new --prefix, or --overwrite to '
                         'replace it' % (prefix, ', '.join(map(str, epochs))))
    # Replaced means gone: a later --resume last must not find the old run's last epoch.
    for epoch in epochs:
        for path in (checkpoint.params_path(prefix, epoch), checkpoint.states_path(prefix, epoch)):
            if os.path.isfile(path):
                os.remove(path)
    logger.info('--overwrite: removed the checkpoints of epochs %s of %s',
                ', '.join(map(str, epochs)), prefix)


# ----------------------------------------------------------------------------------- trainer

class Trainer:
    """One training run; ``run()`` returns a summary dict."""

    def __init__(self, opts, prefix, kvstore, rank, num_workers):
        self.opts = opts
        self.prefix = prefix
        self.kvstore, self.rank, self.num_workers = kvstore, rank, num_workers
        self.is_chief = rank == 0
        self.contexts = resolve_contexts(opts.gpus, opts.cpu)
        self.class_names = resolve_class_names(opts.class_names, opts.num_class)
        num_example = check_data(opts)
        num_example = opts.num_example or num_example
        self.epoch_size = max(1, num_example // (opts.batch_size * num_workers))
        self.train_iter = self._train_iter()
        self.val_iter = self._val_iter()
        self.net = training_symbol(opts)
        self.last_checkpoint = None
        self.monitor = (mx.mon.Monitor(opts.monitor, pattern=opts.monitor_pattern)
                        if opts.monitor > 0 else None)
        logger.info('Training %s on %d images per epoch (%d batches of %d per worker, %d '
                    'worker(s)) on %s', opts.network, num_example, self.epoch_size,
                    opts.batch_size, num_workers, self.contexts)

    # data ---------------------------------------------------------------------------------
    def _train_iter(self):
        opts = self.opts
        aug = augmentation(opts)
        if opts.seed is not None:
            aug['seed'] = opts.seed
        if self.num_workers > 1:
            aug.update(num_parts=self.num_workers, part_index=self.rank)
        data = DetRecordIter(opts.train_path, opts.batch_size, opts.data_shape,
                             mean_pixels=opts.mean_pixels, label_pad_width=opts.label_width,
                             path_imglist=opts.train_list, num_classes=opts.num_class, **aug)
        if self.num_workers > 1:
            # Shards may differ by a batch; dist_sync needs the same number of steps everywhere.
            data = mx.io.ResizeIter(data, self.epoch_size)
        return data

    def _val_iter(self):
        opts = self.opts
        if not opts.val_path or not self.is_chief:
            return None
        return validation_iter(opts.val_path, opts.batch_size, opts.data_shape,
                               opts.mean_pixels, opts.label_width, opts.val_list, opts.num_class)

    def _val_metric(self):
        metric_class = VOC07MApMetric if self.opts.voc07 else MApMetric
        return metric_class(ovp_thresh=self.opts.overlap_thresh,
                            use_difficult=self.opts.use_difficult,
                            class_names=self.class_names, pred_idx=DET_OUTPUT_INDEX)

    # module -------------------------------------------------------------------------------
    def _module(self, source):
        opts = self.opts
        fixed = sorted(set(frozen_by_pattern(self.net, opts.freeze)) | set(source.fixed_names))
        if fixed:
            logger.info('Fixed parameters (%d): %s', len(fixed), ', '.join(fixed))
        mod = mx.mod.Module(self.net, data_names=('data',), label_names=('label',),
                            context=self.contexts, fixed_param_names=fixed)
        mod.bind(self.train_iter.provide_data, self.train_iter.provide_label, for_training=True)
        mod.init_params(mx.init.Xavier(), arg_params=source.arg_params,
                        aux_params=source.aux_params, allow_missing=True)
        self._init_optimizer(mod, source)
        if self.monitor is not None:
            mod.install_monitor(self.monitor)
        return mod

    def _init_optimizer(self, mod, source):
        opts = self.opts
        states = self._optimizer_states(source)
        # With its saved state the optimizer continues counting updates (Adam's bias
        # correction, the schedule's steps); without it, it starts afresh on a shifted schedule.
        done_updates = source.begin_epoch * self.epoch_size if states else 0
        learning_rate, scheduler = make_lr_schedule(
            opts.lr_schedule, opts.lr, opts.lr_steps, opts.lr_factor, self.epoch_size,
            0 if states else source.begin_epoch, opts.end_epoch)
        # The losses are already averaged per batch; only devices (and synchronous workers,
        # whose gradients the servers add up) remain to be averaged.
        replicas = len(self.contexts) * (self.num_workers if '_sync' in opts.kv_store else 1)
        params = optimizer_params(opts.optimizer, learning_rate, opts.momentum, opts.wd,
                                  scheduler, 1.0 / replicas)
        mod.init_optimizer(kvstore=self.kvstore, optimizer=opts.optimizer,
                           optimizer_params=dict(params, begin_num_update=done_updates))
        if states:
            mod.load_optimizer_states(states)
            logger.info('Loaded the optimizer state %s (%d updates done)', states, done_updates)

    def _keeps_optimizer_state(self):
        return self.num_workers == 1

    def _optimizer_states(self, source):
        """The optimizer-state file to continue from, or None."""
        if not source.resumed:
            return None
        path = checkpoint.states_path(self.prefix, source.begin_epoch)
        if self._keeps_optimizer_state() and os.path.isfile(path):
            return path
        logger.info('No optimizer state %s: momentum starts from zero', path)
        return None

    # loop ---------------------------------------------------------------------------------
    def run(self):
        opts = self.opts
        if opts.seed is not None:
            seed_everything(opts.seed)
        source = choose_param_source(opts, self.prefix, self.net,
                                     dict(self.train_iter.provide_data +
                                          self.train_iter.provide_label))
        if source.resumed:
            self.last_checkpoint = checkpoint.params_path(self.prefix, source.begin_epoch)
        if self.is_chief:
            checkpoint.remove_partial_files(self.prefix)
        history = TrainingHistory(self.prefix, source.begin_epoch) if self.is_chief else None
        if source.begin_epoch >= opts.end_epoch:
            logger.info('Nothing to train: begin epoch %d >= end epoch %d',
                        source.begin_epoch, opts.end_epoch)
            return self._summary(history, None)
        mod = self._module(source)
        metric, val_metric = MultiBoxMetric(), self._val_metric()
        speedometer = mx.callback.Speedometer(opts.batch_size, opts.frequent)
        digest = None
        for epoch in range(source.begin_epoch, opts.end_epoch):
            seconds, images = self._train_epoch(mod, epoch, metric, speedometer)
            if self.num_workers > 1 and epoch + 1 == opts.end_epoch:
                digest = self._log_digest(mod)
            record = self._end_epoch(mod, epoch, metric, val_metric, seconds, images)
            params = self._checked_params(mod, epoch + 1) if self._saves(epoch) else None
            # The record goes first: a run killed between the two writes resumes from the
            # previous checkpoint and drops the record, never a checkpoint without its record.
            if history is not None:
                history.add(record)
            if params is not None:
                self._save(epoch + 1, mod, *params)
        return self._summary(history, digest)

    def _train_epoch(self, mod, epoch, metric, speedometer):
        metric.reset()
        self.train_iter.reset()
        tic, images = time.time(), 0
        for nbatch, batch in enumerate(self.train_iter):
            if self.monitor is not None:
                self.monitor.tic()
            mod.forward_backward(batch)
            mod.update_metric(metric, batch.label)
            self._check_finite(metric, epoch, nbatch)
            mod.update()
            if self.monitor is not None:
                self.monitor.toc_print()
            images += batch.data[0].shape[0] - (batch.pad or 0)
            speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric,
                                               locals=None))
        return time.time() - tic, images

    def _check_finite(self, metric, epoch, nbatch):
        losses = metric.last_batch
        if np.all(np.isfinite(losses)):
            return
        raise TrainingDiverged(
            'non-finite loss at Epoch[%d] Batch[%d] (CrossEntropy=%s, SmoothL1=%s): training '
            'stopped before applying this update; %s' % (epoch, nbatch, losses[0], losses[1],
                                                         self._after_divergence()))

    def _after_divergence(self):
        kept = ('the last good checkpoint %s is kept' % self.last_checkpoint
                if self.last_checkpoint else 'no checkpoint of this run was written')
        return '%s. Lower --lr or check the data, then continue with --resume.' % kept

    def _check_params_finite(self, params, epoch):
        """Activations can hide a bad weight (ReLU maps NaN to 0), so the losses alone do not
        prove a checkpoint sound: never write one with NaN or infinite values."""
        bad = sorted(name for name, value in params.items()
                     if not np.isfinite(value.asnumpy()).all())
        if bad:
            raise TrainingDiverged('parameters became non-finite by the end of Epoch[%d] (%s): '
                                   'not saved; %s' % (epoch - 1, ', '.join(bad[:5]),
                                                      self._after_divergence()))

    def _end_epoch(self, mod, epoch, metric, val_metric, seconds, images):
        record = {'epoch': epoch + 1, 'seconds': round(seconds, 3),
                  'images_per_second': round(images / max(seconds, 1e-9), 3),
                  'lr': self._current_lr(mod)}
        for name, value in metric.get_global_name_value():
            logger.info('Epoch[%d] Train-%s=%f', epoch, name, value)
            record[name] = value
        logger.info('Epoch[%d] Time cost=%.3f', epoch, seconds)
        if self.val_iter is not None:
            for name, value in self._validate(mod, val_metric):
                logger.info('Epoch[%d] Validation-%s=%f', epoch, name, value)
                record['mAP' if name == 'mAP' else 'AP ' + name] = value
        return record

    def _current_lr(self, mod):
        optimizer = getattr(mod, '_optimizer', None)
        if optimizer is None or self.num_workers > 1:
            return None
        if optimizer.lr_scheduler is not None:
            return float(optimizer.lr_scheduler(optimizer.num_update))
        return float(optimizer.lr)

    def _validate(self, mod, val_metric):
        """Validation metric over the validation set, each image counted once."""
        val_metric.reset()
        self.val_iter.reset()
        for batch in self.val_iter:
            mod.forward(batch, is_train=False)
            keep = batch.data[0].shape[0] - (batch.pad or 0)
            val_metric.update([label[:keep] for label in batch.label],
                              [output[:keep] for output in mod.get_outputs()])
        return val_metric.get_name_value()

    def _saves(self, epoch):
        """True when this process writes a checkpoint at the end of ``epoch``."""
        period = max(1, self.opts.checkpoint_period)
        due = (epoch + 1) % period == 0 or epoch + 1 == self.opts.end_epoch
        return self.is_chief and due

    def _checked_params(self, mod, epoch):
        arg_params, aux_params = mod.get_params()
        self._check_params_finite(dict(arg_params, **aux_params), epoch)
        return arg_params, aux_params

    def _save(self, epoch, mod, arg_params, aux_params):
        save_states = mod.save_optimizer_states if self._keeps_optimizer_state() else None
        spec = self.model_spec() if self.last_checkpoint is None else None
        checkpoint.save_checkpoint(self.prefix, epoch, self.net, arg_params, aux_params,
                                   save_states, spec)
        self.last_checkpoint = checkpoint.params_path(self.prefix, epoch)

    def model_spec(self):
        """What demo/evaluate/deploy need to rebuild this network (``symbol.model_io``)."""
        opts = self.opts
        return model_io.make_spec(opts.network, opts.data_shape, opts.num_class,
                                  self.class_names, opts.mean_pixels, opts.nms_thresh,
                                  opts.nms_topk, opts.force_nms, opts.preset_overrides,
                                  self.val_label_width())

    def val_label_width(self):
        return getattr(self.train_iter, 'label_pad_width', self.opts.label_width)

    def _log_digest(self, mod):
        """Digest of the learned parameters right after the last update (before validation:
        inference rewrites the unused gamma of fix_gamma BatchNorm layers to 1)."""
        digest = parameter_digest(mod.get_params()[0])
        logger.info('worker %d of %d: learned-parameter digest %s', self.rank,
                    self.num_workers, digest)
        return digest

    def _summary(self, history, digest):
        summary = {'prefix': self.prefix, 'last_checkpoint': self.last_checkpoint,
                   'epochs': list(history.epochs) if history is not None else [],
                   'rank': self.rank, 'num_workers': self.num_workers}
        if digest is not None:
            summary['digest'] = digest
        return summary


def train_net(opts):
    """Train as ``opts`` (a ``TrainOptions``) says; returns a summary dict: ``prefix``,
    ``last_checkpoint``, ``epochs`` (the history records) and, for distributed runs, the
    worker's ``rank`` and parameter ``digest``."""
    prefix = model_io.expand_prefix(opts.prefix, opts.network, opts.data_shape)
    refuse_to_replace(prefix, opts)   # before joining a distributed run: nobody waits for us
    kvstore, rank, num_workers = create_kvstore(opts.kv_store)
    with training_log(log_file_path(prefix, opts.log, rank)):
        return Trainer(opts, prefix, kvstore, rank, num_workers).run()
