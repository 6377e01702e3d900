"""Checkpoints in MXNet's format: ``<prefix>-symbol.json`` and ``<prefix>-%04d.params``
(``arg:``/``aux:`` keys, loadable by ``mx.model.load_checkpoint``), plus the optimizer state
``<prefix>-%04d.states`` when the optimizer runs in this process.

Every file is written under a temporary name and renamed into place, so a process killed at any
moment leaves either the previous complete checkpoint or the new one, never a truncated file.
The .params file is written last: its presence marks a complete checkpoint.
"""
import glob
import logging
import os
import re

import mxnet as mx

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = '.partial'
_PARAMS_NAME = re.compile(r'-(\d{4,})\.params$')


class CheckpointError(ValueError):
    """A checkpoint that was asked for is missing or does not fit the network."""


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def states_path(prefix, epoch):
    return '%s-%04d.states' % (prefix, epoch)


def atomic_write(path, write):
    """Call ``write(temporary_path)``, flush it to disk and rename it to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = path + PARTIAL_SUFFIX
    write(partial)
    with open(partial, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def save_params_file(path, arg_params, aux_params):
    """``arg_params``/``aux_params`` (name -> NDArray) in MXNet's checkpoint layout."""
    arrays = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    arrays.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    atomic_write(path, lambda tmp: mx.nd.save(tmp, arrays))


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, save_states=None):
    """Write the checkpoint of ``epoch``; ``save_states(path)`` writes the optimizer state."""
    atomic_write(symbol_path(prefix), symbol.save)
    if save_states is not None:
        atomic_write(states_path(prefix, epoch), save_states)
    save_params_file(params_path(prefix, epoch), arg_params, aux_params)
    logger.info('Saved checkpoint to "%s"', params_path(prefix, epoch))


def saved_epochs(prefix):
    """Epochs of the complete checkpoints of ``prefix``, ascending."""
    epochs = []
    for path in glob.glob(glob.escape(prefix) + '-*.params'):
        found = _PARAMS_NAME.search(path)
        if found and path == params_path(prefix, int(found.group(1))):
            epochs.append(int(found.group(1)))
    return sorted(epochs)


def latest_epoch(prefix):
    epochs = saved_epochs(prefix)
    if not epochs:
        raise CheckpointError('no checkpoint %s-NNNN.params found to resume from' % prefix)
    return epochs[-1]


def remove_partial_files(prefix):
    """Delete what a killed run left half-written (never read: only complete files count)."""
    for path in glob.glob(glob.escape(prefix) + '-*' + PARTIAL_SUFFIX):
        os.remove(path)
        logger.info('removed the unfinished file %s of an interrupted run', path)


def load_params(prefix, epoch):
    """(arg_params, aux_params) of ``prefix``'s checkpoint ``epoch``."""
    path = params_path(prefix, epoch)
    if not os.path.isfile(path):
        epochs = saved_epochs(prefix)
        raise CheckpointError('checkpoint not found: %s (saved epochs of this prefix: %s)'
                              % (path, ', '.join(map(str, epochs)) or 'none'))
    arg_params, aux_params = {}, {}
    for key, value in mx.nd.load(path).items():
        kind, _, name = key.partition(':')
        if kind not in ('arg', 'aux') or not name:
            raise CheckpointError('%s: key %r is not "arg:<name>" or "aux:<name>"; not an MXNet '
                                  'checkpoint' % (path, key))
        (arg_params if kind == 'arg' else aux_params)[name] = value
    return arg_params, aux_params
