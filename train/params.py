"""Where the initial weights come from, and which weights stay fixed.

Priority as in the original mxnet-ssd: ``--resume N`` (continue a run of this prefix),
``--finetune N`` (start from a run of this prefix with, e.g., another class count: parameters
whose shapes changed are dropped and all but the prediction heads are frozen),
``--pretrained PREFIX --epoch N`` (backbone weights such as ``vgg16_reduced-0001.params``),
else from scratch.  Whatever is not loaded is initialised by the initializer (Xavier).
"""
import logging
import os
import re
from collections import namedtuple

from .checkpoint import CheckpointError, latest_epoch, load_params, params_path

logger = logging.getLogger(__name__)

INPUT_NAMES = ('data', 'label')
# Finetuning keeps training only the loc/cls prediction convolutions ("*_pred_conv_*").
HEAD_MARKER = 'pred'
RESUME_LAST = 'last'

ParamSource = namedtuple('ParamSource', ['arg_params', 'aux_params', 'begin_epoch',
                                         'fixed_names', 'resumed'])
ParamSource.__doc__ = """Loaded ``arg_params``/``aux_params`` (possibly empty), the epoch
training starts from, names that must stay fixed because of the source (finetuning) and whether
the run continues a previous one (``resumed``: its optimizer state may be loaded too)."""


def param_shapes(net, input_shapes):
    """{name: shape} of the learnable arguments and auxiliary states of ``net``."""
    arg_shapes, _, aux_shapes = net.infer_shape(**input_shapes)
    shapes = {n: s for n, s in zip(net.list_arguments(), arg_shapes) if n not in INPUT_NAMES}
    shapes.update(zip(net.list_auxiliary_states(), aux_shapes))
    return shapes


def frozen_by_pattern(net, pattern):
    """Argument names matching the ``--freeze`` regex (anchored at the name's start)."""
    if not pattern or not pattern.strip():
        return []
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ValueError('--freeze %r is not a valid regular expression: %s' % (pattern, err))
    return [n for n in net.list_arguments() if n not in INPUT_NAMES and regex.match(n)]


def split_by_fit(params, shapes):
    """(params that exist in the network with the same shape, {name: reason} of the others)."""
    fitting, rejected = {}, {}
    for name, value in params.items():
        if name not in shapes:
            rejected[name] = 'not in the network'
        elif tuple(value.shape) != tuple(shapes[name]):
            rejected[name] = 'shape %s, network needs %s' % (tuple(value.shape),
                                                             tuple(shapes[name]))
        else:
            fitting[name] = value
    return fitting, rejected


def _split_arg_aux(params, net):
    aux_names = set(net.list_auxiliary_states())
    arg = {k: v for k, v in params.items() if k not in aux_names}
    aux = {k: v for k, v in params.items() if k in aux_names}
    return arg, aux


def _load_fitting(prefix, epoch, net, shapes, what):
    arg_params, aux_params = load_params(prefix, epoch)
    fitting, rejected = split_by_fit(dict(arg_params, **aux_params), shapes)
    for name, reason in sorted(rejected.items()):
        logger.info('%s %s: skipping %s (%s)', what, params_path(prefix, epoch), name, reason)
    return fitting, rejected


def resume_source(prefix, epoch, net, shapes):
    epoch = latest_epoch(prefix) if epoch == RESUME_LAST else int(epoch)
    fitting, rejected = _load_fitting(prefix, epoch, net, shapes, 'resume')
    wrong_shape = {n: r for n, r in rejected.items() if n in shapes}
    if wrong_shape:
        name, reason = sorted(wrong_shape.items())[0]
        raise CheckpointError('cannot resume from %s: parameter %s has %s (%d parameters differ); '
                              'the network or class count changed; use --finetune to adapt it'
                              % (params_path(prefix, epoch), name, reason, len(wrong_shape)))
    logger.info('Resume training from %s', params_path(prefix, epoch))
    arg, aux = _split_arg_aux(fitting, net)
    return ParamSource(arg, aux, epoch, [], True)


def finetune_source(prefix, epoch, net, shapes):
    fitting, _ = _load_fitting(prefix, epoch, net, shapes, 'finetune')
    arg, aux = _split_arg_aux(fitting, net)
    fixed = sorted(n for n in arg if HEAD_MARKER not in n)
    logger.info('Start finetuning from %s: %d parameters loaded, %d of them fixed (all but the '
                'prediction heads)', params_path(prefix, epoch), len(fitting), len(fixed))
    return ParamSource(arg, aux, epoch, fixed, False)


def pretrained_source(prefix, epoch, net, shapes, begin_epoch):
    fitting, _ = _load_fitting(prefix, epoch, net, shapes, 'pretrained')
    if not fitting:
        raise CheckpointError('no parameter of %s fits the network (%s, ...); wrong --pretrained '
                              'file?' % (params_path(prefix, epoch), ', '.join(sorted(shapes)[:3])))
    logger.info('Start training with %d parameters of %s', len(fitting), params_path(prefix, epoch))
    arg, aux = _split_arg_aux(fitting, net)
    return ParamSource(arg, aux, begin_epoch, [], False)


def default_pretrained(network, epoch):
    """``model/<network>`` when it holds weights of ``epoch`` (the original's
    ``model/vgg16_reduced-0001.params`` layout), else '' (from scratch)."""
    prefix = os.path.join('model', network)
    return prefix if os.path.isfile(params_path(prefix, epoch)) else ''


def choose_param_source(opts, prefix, net, input_shapes):
    """The ``ParamSource`` selected by the options (resume > finetune > pretrained > scratch);
    ``prefix``: the run's checkpoint prefix, expanded (``model_io.expand_prefix``)."""
    shapes = param_shapes(net, input_shapes)
    if opts.resume == RESUME_LAST or int(opts.resume) > 0:
        return resume_source(prefix, opts.resume, net, shapes)
    if opts.finetune > 0:
        return finetune_source(prefix, opts.finetune, net, shapes)
    pretrained = (default_pretrained(opts.network, opts.epoch) if opts.pretrained is None
                  else opts.pretrained)
    if pretrained:
        return pretrained_source(pretrained, opts.epoch, net, shapes, opts.begin_epoch)
    logger.warning('Training %s from scratch (no --pretrained weights): expect a long schedule '
                   'and a lower mAP than with an ImageNet backbone', opts.network)
    return ParamSource({}, {}, opts.begin_epoch, [], False)
