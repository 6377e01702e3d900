"""Learning-rate schedule and optimizer arguments."""
import logging

import mxnet as mx

logger = logging.getLogger(__name__)

# Hyper-parameters each optimizer takes from the command line.  AdaDelta adapts its own step
# size, so it gets no learning rate (nor a schedule).
OPTIMIZER_ARGS = {
    'sgd': ('learning_rate', 'momentum', 'wd'),
    'rmsprop': ('learning_rate', 'wd'),
    'adam': ('learning_rate', 'wd'),
    'adadelta': ('wd',),
}
# --lr-schedule choices (make_lr_schedule)
LR_SCHEDULES = ('step', 'cosine')


def lr_schedule(learning_rate, step_epochs, factor, epoch_size, begin_epoch):
    """(learning rate at ``begin_epoch``, MultiFactorScheduler of the remaining steps or None).

    ``step_epochs``: epochs after which the rate is multiplied by ``factor``.  A resumed run
    starts its update count at 0, so the steps already passed are applied to the rate and the
    remaining ones are shifted by ``begin_epoch``.
    """
    if factor >= 1 or not step_epochs:
        return learning_rate, None
    passed = [s for s in step_epochs if s <= begin_epoch]
    learning_rate *= factor ** len(passed)
    remaining = [epoch_size * (s - begin_epoch) for s in sorted(step_epochs) if s > begin_epoch]
    if passed:
        logger.info('Resuming at epoch %d: learning rate adjusted to %g', begin_epoch,
                    learning_rate)
    if not remaining:
        return learning_rate, None
    return learning_rate, mx.lr_scheduler.MultiFactorScheduler(step=remaining, factor=factor,
                                                               base_lr=learning_rate)


class _ShiftedCosine(mx.lr_scheduler.CosineScheduler):
    """A cosine schedule whose update count starts at ``shift`` (a resumed run counting anew)."""

    def __init__(self, shift, **kwargs):
        super().__init__(**kwargs)
        self.shift = shift

    def __call__(self, num_update):
        return super().__call__(num_update + self.shift)


def cosine_schedule(learning_rate, epoch_size, begin_epoch, end_epoch):
    """(``learning_rate``, a scheduler decaying it to 0 along a half cosine that ends with
    epoch ``end_epoch``).  A resumed run whose update count starts at 0 passes its
    ``begin_epoch`` so that the curve continues where it stopped."""
    if end_epoch <= begin_epoch:
        return learning_rate, None
    return learning_rate, _ShiftedCosine(shift=epoch_size * begin_epoch,
                                         max_update=epoch_size * end_epoch,
                                         base_lr=learning_rate)


def make_lr_schedule(kind, learning_rate, step_epochs, factor, epoch_size, begin_epoch,
                     end_epoch):
    """(learning rate, scheduler or None) of ``--lr-schedule`` ``kind`` (see LR_SCHEDULES)."""
    if kind == 'cosine':
        return cosine_schedule(learning_rate, epoch_size, begin_epoch, end_epoch)
    if kind == 'step':
        return lr_schedule(learning_rate, step_epochs, factor, epoch_size, begin_epoch)
    raise ValueError('unknown --lr-schedule %r; choose one of %s'
                     % (kind, ', '.join(LR_SCHEDULES)))


def optimizer_params(name, learning_rate, momentum, wd, scheduler, rescale_grad):
    """Keyword arguments of ``mx.optimizer.create(name, ...)``."""
    if name not in OPTIMIZER_ARGS:
        raise ValueError('unknown --optimizer %r; choose one of %s'
                         % (name, ', '.join(sorted(OPTIMIZER_ARGS))))
    values = {'learning_rate': learning_rate, 'momentum': momentum, 'wd': wd}
    params = {k: values[k] for k in OPTIMIZER_ARGS[name]}
    params['rescale_grad'] = rescale_grad
    if 'learning_rate' in params and scheduler is not None:
        params['lr_scheduler'] = scheduler
    return params
