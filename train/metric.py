"""Training losses of the SSD training symbol as an MXNet ``EvalMetric``.

The training symbol's outputs are [cls_prob (N, C+1, A), loc_loss (N, 4A), cls_label (N, A),
det_out]; ``cls_label`` is the matching target of every anchor (-1 = ignored).  Both losses are
averaged over the anchors that take part in the classification loss (positives and mined
negatives), as the original mxnet-ssd reports them.
"""
import mxnet as mx
import numpy as np

CLS_PROB, LOC_LOSS, CLS_LABEL = 0, 1, 2
LOSS_NAMES = ('CrossEntropy', 'SmoothL1')
# Keeps log() finite for anchors whose target class got probability 0.
LOG_EPS = 1e-8


def batch_loss_sums(preds):
    """(cross-entropy sum, smooth-L1 sum, number of counted anchors) of one batch."""
    cls_prob = preds[CLS_PROB].asnumpy()
    loc_loss = preds[LOC_LOSS].asnumpy()
    cls_label = preds[CLS_LABEL].asnumpy().astype(np.int64)
    valid = cls_label >= 0
    target_prob = np.take_along_axis(cls_prob, np.maximum(cls_label, 0)[:, None, :], axis=1)[:, 0]
    cross_entropy = float(-np.log(target_prob[valid] + LOG_EPS).sum())
    return cross_entropy, float(loc_loss.sum()), int(valid.sum())


class MultiBoxMetric(mx.metric.EvalMetric):
    """Reports ``CrossEntropy`` and ``SmoothL1``, per counted anchor.

    Local values (``get``) cover the batches since the last ``reset_local`` (the Speedometer
    window); global ones (``get_global``) the whole epoch.  ``last_batch`` holds the two losses
    of the latest batch, for the divergence check.
    """

    def __init__(self, name='MultiBox'):
        super(MultiBoxMetric, self).__init__(name, has_global_stats=True)
        self.num = len(LOSS_NAMES)
        self.reset()

    def reset(self):
        self.num_inst = 0
        self.sum_metric = np.zeros(len(LOSS_NAMES))
        self.global_num_inst = 0
        self.global_sum_metric = np.zeros(len(LOSS_NAMES))
        self.last_batch = (0.0, 0.0)

    def reset_local(self):
        self.num_inst = 0
        self.sum_metric = np.zeros(len(LOSS_NAMES))

    def update(self, labels, preds):
        cross_entropy, smooth_l1, count = batch_loss_sums(preds)
        sums = np.array([cross_entropy, smooth_l1])
        self.last_batch = tuple(sums / max(count, 1))
        self.sum_metric += sums
        self.global_sum_metric += sums
        self.num_inst += count
        self.global_num_inst += count

    @staticmethod
    def _averages(sums, count):
        if count == 0:
            return [float('nan')] * len(LOSS_NAMES)
        return [float(s) / count for s in sums]

    def get(self):
        return list(LOSS_NAMES), self._averages(self.sum_metric, self.num_inst)

    def get_global(self):
        return list(LOSS_NAMES), self._averages(self.global_sum_metric, self.global_num_inst)
