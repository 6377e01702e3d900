"""VOC mean average precision as an MXNet ``EvalMetric`` (usable in ``Module.fit`` /
``Module.score`` and by ``evaluate_net``).

Labels: (B, M, >=5) rows [cls, xmin, ymin, xmax, ymax, (difficult)], normalised, padded with
rows of -1.  Predictions ``preds[pred_idx]``: (B, N, 6) rows [cls, score, xmin, ymin, xmax,
ymax], rows with cls < 0 ignored (the MultiBoxDetection output as it comes).
"""
import mxnet as mx
import numpy as np

from .average_precision import ClassRecords, match_detections

LABEL_MIN_WIDTH = 5
DET_WIDTH = 6
DIFFICULT_COLUMN = 5


def fetch_batch(labels, dets):
    """Labels and detections of one batch as numpy arrays with a single device-to-host copy
    (the two are joined on the detections' device first)."""
    if isinstance(labels, mx.nd.NDArray) and isinstance(dets, mx.nd.NDArray):
        batch = labels.shape[0]
        label_flat = labels.reshape((batch, -1)).as_in_context(dets.context)
        label_flat = label_flat.astype(dets.dtype, copy=False)
        joined = mx.nd.concat(label_flat, dets.reshape((batch, -1)), dim=1).asnumpy()
        split = label_flat.shape[1]
        return joined[:, :split].reshape(labels.shape), joined[:, split:].reshape(dets.shape)
    return _to_numpy(labels), _to_numpy(dets)


def _to_numpy(array):
    return array.asnumpy() if isinstance(array, mx.nd.NDArray) else np.asarray(array)


def mean_of_defined(values):
    """Mean over the values that are not NaN (NaN if there are none)."""
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    return float(values[defined].mean()) if defined.any() else float('nan')


def _check_batch(labels, dets):
    if labels.ndim != 3 or labels.shape[2] < LABEL_MIN_WIDTH:
        raise ValueError('labels must be (batch, objects, >=%d) rows [cls, xmin, ymin, xmax, '
                         'ymax, (difficult)], got shape %s' % (LABEL_MIN_WIDTH, labels.shape))
    if dets.ndim != 3 or dets.shape[2] != DET_WIDTH:
        raise ValueError('detections must be (batch, boxes, %d) rows [cls, score, xmin, ymin, '
                         'xmax, ymax], got shape %s' % (DET_WIDTH, dets.shape))
    if labels.shape[0] != dets.shape[0]:
        raise ValueError('labels hold %d images but detections %d'
                         % (labels.shape[0], dets.shape[0]))


class MApMetric(mx.metric.EvalMetric):
    """Mean average precision, VOC2010+ definition (area under the monotone precision
    envelope).

    Parameters
    ----------
    ovp_thresh : float
        IoU above which a detection matches a ground truth.
    use_difficult : bool
        Count difficult ground truths like any other; by default they are neither needed
        for recall nor penalised when detected.
    class_names : list of str or None
        Names of classes 0..K-1; ``get()`` then reports each class and 'mAP', otherwise
        only 'mAP'.
    pred_idx : int
        Which model output holds the detections (3 for the training symbol).
    roc_output_path : str or None
        If set, ``get()`` also saves a precision-recall plot per class in this folder.
    """
    use_07_metric = False

    def __init__(self, ovp_thresh=0.5, use_difficult=False, class_names=None, pred_idx=0,
                 roc_output_path=None):
        self.ovp_thresh = float(ovp_thresh)
        self.use_difficult = bool(use_difficult)
        self.class_names = list(class_names) if class_names is not None else None
        self.pred_idx = int(pred_idx)
        self.roc_output_path = roc_output_path
        super(MApMetric, self).__init__('mAP')

    def reset(self):
        super(MApMetric, self).reset()
        # per image: class, score and match flag of each detection, in score order
        self._det_classes, self._det_scores, self._det_flags = [], [], []
        self._num_positives = np.zeros(0, dtype=np.int64)   # counted gts per class id

    def reset_local(self):
        """AP is a statistic of the whole data set: nothing is local, so records stay."""

    def update(self, labels, preds):
        label_batch, det_batch = fetch_batch(labels[0], preds[self.pred_idx])
        _check_batch(label_batch, det_batch)
        for labels_of_image, dets_of_image in zip(label_batch, det_batch):
            self._update_image(labels_of_image, dets_of_image)
        self.num_inst += label_batch.shape[0]
        self.global_num_inst += label_batch.shape[0]

    def _update_image(self, labels, dets):
        gts = labels[labels[:, 0] >= 0]
        dets = dets[dets[:, 0] >= 0]
        gt_cls = self._class_ids(gts[:, 0], 'label')
        det_cls = self._class_ids(dets[:, 0], 'detection')
        difficult = (gts[:, DIFFICULT_COLUMN] > 0 if gts.shape[1] > DIFFICULT_COLUMN
                     else np.zeros(gts.shape[0], dtype=bool))
        ignored = difficult & (not self.use_difficult)
        order, flags = match_detections(dets[:, 2:6], dets[:, 1], gts[:, 1:5], ignored,
                                        self.ovp_thresh, det_classes=det_cls, gt_classes=gt_cls)
        self._det_classes.append(det_cls[order])
        self._det_scores.append(dets[order, 1].astype(np.float64))
        self._det_flags.append(flags)
        self._count_positives(gt_cls[~ignored])

    def _count_positives(self, classes):
        counts = np.bincount(classes, minlength=self._num_positives.size)
        counts[:self._num_positives.size] += self._num_positives
        self._num_positives = counts

    def _class_ids(self, values, what):
        ids = values.astype(np.int64)
        if np.any(ids != values):
            raise ValueError('%s class ids must be whole numbers, got %s'
                             % (what, values[ids != values][:5]))
        if self.class_names is not None and ids.size and ids.max() >= len(self.class_names):
            raise ValueError('%s class id %d out of range for %d class names'
                             % (what, ids.max(), len(self.class_names)))
        return ids

    def _class_records(self):
        """{class id: ClassRecords} for every class id up to num_classes."""
        classes = np.concatenate(self._det_classes or [np.zeros(0, np.int64)])
        scores = np.concatenate(self._det_scores or [np.zeros(0)])
        flags = np.concatenate(self._det_flags or [np.zeros(0, np.int8)])
        records = {}
        for cls in range(self.num_classes):
            mine = classes == cls
            records[cls] = ClassRecords()
            positives = self._num_positives[cls] if cls < self._num_positives.size else 0
            records[cls].add(scores[mine], flags[mine], positives)
        return records

    @property
    def num_classes(self):
        if self.class_names is not None:
            return len(self.class_names)
        seen = [c.max() + 1 for c in self._det_classes if c.size]
        return int(max(seen + [self._num_positives.size]))

    def names(self):
        """Display name of each class id."""
        if self.class_names is not None:
            return list(self.class_names)
        return ['class_%d' % i for i in range(self.num_classes)]

    def class_aps(self):
        """AP per class id (NaN for classes with neither gts nor detections)."""
        records = self._class_records()
        return [records[c].average_precision(self.use_07_metric) for c in sorted(records)]

    def mean_ap(self):
        return mean_of_defined(self.class_aps())

    def summary(self):
        return {'mAP': self.mean_ap()}

    def pr_curves(self):
        """{class name: (recall, precision)} for every class with data."""
        names = self.names()
        return {names[c]: records.curve() for c, records in sorted(self._class_records().items())
                if not records.is_empty}

    def get(self):
        if self.roc_output_path:
            from .report import save_pr_curves
            save_pr_curves(self.pr_curves(), self.roc_output_path)
        aps = self.class_aps()
        if self.class_names is None:
            return self.name, mean_of_defined(aps)
        return self.class_names + [self.name], aps + [mean_of_defined(aps)]


class VOC07MApMetric(MApMetric):
    """Mean average precision with the VOC2007 11-point interpolated AP."""
    use_07_metric = True
