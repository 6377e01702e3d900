"""The part every VOC-style evaluation shares: matching one class's detections in one image
to its ground truth, accumulating the matches over a data set and turning them into a
precision-recall curve and an average precision.

Used both by the in-memory metric (normalised coordinates) and by the file-based VOC devkit
evaluation (pixel coordinates with the devkit's inclusive ``+1`` width), so the two can only
differ in their inputs, never in their rules.
"""
import numpy as np

TP, FP, IGNORED = 1, 0, -1

# Recall thresholds of the VOC2007 11-point metric, generated like the official devkit's
# 0:0.1:1 (k * 0.1), so the rounding at e.g. t = 0.3 gives the published numbers.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def pairwise_iou(boxes_a, boxes_b, pixel_offset=0.0):
    """IoU of every (xmin, ymin, xmax, ymax) box in ``boxes_a`` (N, 4) with every box in
    ``boxes_b`` (M, 4), as an (N, M) array.  ``pixel_offset=1`` gives the VOC devkit's
    inclusive-pixel widths (xmax - xmin + 1); normalised coordinates use 0."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    inter_w = (np.minimum(a[:, None, 2], b[None, :, 2])
               - np.maximum(a[:, None, 0], b[None, :, 0]) + pixel_offset)
    inter_h = (np.minimum(a[:, None, 3], b[None, :, 3])
               - np.maximum(a[:, None, 1], b[None, :, 1]) + pixel_offset)
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area_a = (a[:, 2] - a[:, 0] + pixel_offset) * (a[:, 3] - a[:, 1] + pixel_offset)
    area_b = (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / union, 0.0)


def match_detections(det_boxes, det_scores, gt_boxes, gt_ignored, ovp_thresh, pixel_offset=0.0,
                     det_classes=None, gt_classes=None):
    """VOC matching of the detections in one image.

    Detections are visited by descending score; each takes its highest-IoU ground truth of
    its class.  IoU > ``ovp_thresh`` with a gt not matched before is a TP, with an already
    matched gt a FP (duplicate); a match to an ignored (difficult) gt is neither; anything
    else is a FP.  Without ``det_classes`` / ``gt_classes`` all boxes are one class.
    Returns (order: detection indices by descending score, flags TP / FP / IGNORED in that
    order).
    """
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-det_scores, kind='stable')
    flags = np.full(order.size, FP, dtype=np.int8)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if order.size == 0 or gt_boxes.shape[0] == 0:
        return order, flags
    ious = pairwise_iou(np.asarray(det_boxes).reshape(-1, 4)[order], gt_boxes, pixel_offset)
    if det_classes is not None:
        other_class = (np.asarray(det_classes)[order][:, None]
                       != np.asarray(gt_classes)[None, :])
        ious[other_class] = -1.0
    best_gt = ious.argmax(axis=1)
    best_iou = ious[np.arange(order.size), best_gt]
    gt_ignored = np.asarray(gt_ignored, dtype=bool).reshape(-1)
    matched = np.zeros(gt_boxes.shape[0], dtype=bool)
    for i in np.flatnonzero(best_iou > ovp_thresh):
        gt = best_gt[i]
        if gt_ignored[gt]:
            flags[i] = IGNORED
        elif not matched[gt]:
            flags[i] = TP
            matched[gt] = True
    return order, flags


class ClassRecords(object):
    """Scores and match flags of one class, accumulated image by image over a data set,
    plus the number of ground truths that count for recall."""

    def __init__(self):
        self._scores = []
        self._flags = []
        self.num_positives = 0

    def add(self, scores, flags, num_positives):
        self._scores.append(np.asarray(scores, dtype=np.float64))
        self._flags.append(np.asarray(flags, dtype=np.int8))
        self.num_positives += int(num_positives)

    def _counted(self):
        if not self._scores:
            return np.zeros(0), np.zeros(0, dtype=np.int8)
        scores = np.concatenate(self._scores)
        flags = np.concatenate(self._flags)
        keep = flags != IGNORED
        return scores[keep], flags[keep]

    @property
    def is_empty(self):
        """True when the class has neither a counted gt nor a counted detection: its AP is
        undefined and it stays out of the mean."""
        return self.num_positives == 0 and self._counted()[0].size == 0

    def curve(self):
        """(recall, precision) after each detection of the whole data set, by descending
        score (ties keep image order, so the result does not depend on batching)."""
        scores, flags = self._counted()
        order = np.argsort(-scores, kind='stable')
        tp = np.cumsum(flags[order] == TP)
        fp = np.cumsum(flags[order] == FP)
        # without positives every detection is a false positive: recall 0, precision 0
        recall = tp / float(max(self.num_positives, 1))
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return recall, precision

    def average_precision(self, use_07_metric=False):
        """AP of the class, NaN when ``is_empty``."""
        if self.is_empty:
            return float('nan')
        recall, precision = self.curve()
        return average_precision(recall, precision, use_07_metric)


def average_precision(recall, precision, use_07_metric=False):
    """VOC average precision of a precision-recall curve.

    ``use_07_metric``: VOC2007 11-point interpolation (mean over t = 0, 0.1, ..., 1 of the
    best precision at recall >= t); otherwise VOC2010+ area under the monotone precision
    envelope."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        best = [precision[recall >= t].max() if np.any(recall >= t) else 0.0
                for t in VOC07_RECALL_THRESHOLDS]
        return float(np.mean(best))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * envelope[steps + 1]))
