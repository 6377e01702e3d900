"""Checkpoints in MXNet's format: ``<prefix>-symbol.json`` and ``<prefix>-%04d.params``
(``arg:``/``aux:`` keys, loadable by ``mx.model.load_checkpoint``), plus the optimizer state
``<prefix>-%04d.states`` when the optimizer runs in this process.

Every file is written under a temporary name and renamed into place, so a process killed at any
moment leaves either the previous complete checkpoint or the new one, never a truncated file.
The .params file is written last: its presence marks a complete checkpoint.  The first
checkpoint of a run also writes the model spec ``<prefix>-model.json`` (``symbol.model_io``).
"""
import glob
import logging
import os

from symbol import model_io
from symbol.model_io import (PARTIAL_SUFFIX, atomic_write, params_path,  # noqa: F401
                             save_params_file, saved_epochs, spec_path, states_path, symbol_path)

logger = logging.getLogger(__name__)

CheckpointError = model_io.ModelError


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, save_states=None, spec=None):
    """Write the checkpoint of ``epoch``; ``save_states(path)`` writes the optimizer state;
    ``spec``: the model spec, written beside the symbol (the first checkpoint of a run)."""
    atomic_write(symbol_path(prefix), symbol.save)
    if spec is not None:
        model_io.write_spec(prefix, spec)
    if save_states is not None:
        atomic_write(states_path(prefix, epoch), save_states)
    save_params_file(params_path(prefix, epoch), arg_params, aux_params)
    logger.info('Saved checkpoint to "%s"', params_path(prefix, epoch))


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


load_params = model_io.load_params
