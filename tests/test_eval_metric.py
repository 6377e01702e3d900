"""MApMetric / VOC07MApMetric against hand-computed values and an independent oracle."""
import math
import os

import mxnet as mx
import numpy as np
import pytest

from evaluate.average_precision import average_precision, pairwise_iou
from evaluate.eval_metric import MApMetric, VOC07MApMetric

BOX_A = [0.1, 0.1, 0.4, 0.4]
BOX_B = [0.5, 0.5, 0.9, 0.9]
BOX_C = [0.6, 0.1, 0.9, 0.3]
NOWHERE = [0.0, 0.6, 0.05, 0.65]   # overlaps nothing above


def labels_of(*images, width=6, pad_to=None):
    """(B, M, width) label array from per-image lists of [cls, box, (difficult)], -1 padded."""
    rows = max([len(im) for im in images] + [pad_to or 0, 1])
    out = -np.ones((len(images), rows, width), dtype=np.float32)
    for i, objects in enumerate(images):
        for j, obj in enumerate(objects):
            out[i, j, :len(obj)] = obj
            if width > 5 and len(obj) == 5:
                out[i, j, 5] = 0
    return out


def dets_of(*images, pad_to=None):
    """(B, N, 6) detection array from per-image lists of [cls, score, box]; unused rows -1."""
    rows = max([len(im) for im in images] + [pad_to or 0, 1])
    out = -np.ones((len(images), rows, 6), dtype=np.float32)
    for i, dets in enumerate(images):
        for j, det in enumerate(dets):
            out[i, j] = det
    return out


def gt(cls, box, difficult=0):
    return [cls] + list(box) + [difficult]


def det(cls, score, box):
    return [cls, score] + list(box)


def evaluate(metric_cls, labels, dets, **kwargs):
    metric = metric_cls(**kwargs)
    metric.update([labels], [dets])
    return metric


def mean_ap(metric_cls, labels, dets, **kwargs):
    return evaluate(metric_cls, labels, dets, **kwargs).mean_ap()


BOTH = [MApMetric, VOC07MApMetric]


@pytest.mark.parametrize('metric_cls', BOTH)
def test_perfect_detections_give_one(metric_cls):
    labels = labels_of([gt(0, BOX_A), gt(1, BOX_B)], [gt(0, BOX_C)])
    dets = dets_of([det(0, 0.9, BOX_A), det(1, 0.8, BOX_B)], [det(0, 0.7, BOX_C)])
    metric = evaluate(metric_cls, labels, dets, class_names=['a', 'b'])
    names, values = metric.get()
    assert names == ['a', 'b', 'mAP']
    assert values == [1.0, 1.0, 1.0]


@pytest.mark.parametrize('metric_cls, num_gts, expected', [
    # one gt: recall 0 then 1 at precision 1/2 -> 0.5 under both definitions
    (MApMetric, 1, 0.5), (VOC07MApMetric, 1, 0.5),
    # two gts: recall reaches only 1/2 at precision 1/2:
    # area = 0.5 * 0.5; 11-point = 6 thresholds (0 .. 0.5) at 0.5, five at 0 -> 3/11
    (MApMetric, 2, 0.25), (VOC07MApMetric, 2, 3.0 / 11.0),
])
def test_single_false_positive_above_true_positive(metric_cls, num_gts, expected):
    gts = [gt(0, BOX_A), gt(0, BOX_B)][:num_gts]
    labels = labels_of(gts)
    dets = dets_of([det(0, 0.9, BOX_C), det(0, 0.8, BOX_A)])
    assert mean_ap(metric_cls, labels, dets) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize('metric_cls, expected', [
    # TP, duplicate FP, TP over 2 gts: recall .5 .5 1, precision 1 .5 2/3
    # area = .5 * 1 + .5 * 2/3; 11-point = (6 * 1 + 5 * 2/3) / 11
    (MApMetric, 0.5 + 0.5 * 2.0 / 3.0), (VOC07MApMetric, (6 + 5 * 2.0 / 3.0) / 11.0),
])
def test_duplicate_detection_is_false_positive(metric_cls, expected):
    labels = labels_of([gt(0, BOX_A), gt(0, BOX_B)])
    shifted_a = [0.11, 0.1, 0.41, 0.4]
    dets = dets_of([det(0, 0.9, BOX_A), det(0, 0.8, shifted_a), det(0, 0.7, BOX_B)])
    metric = evaluate(metric_cls, labels, dets)
    recall, precision = metric.pr_curves()['class_0']
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2.0 / 3.0])
    assert metric.mean_ap() == pytest.approx(expected, abs=1e-12)


def test_voc07_and_area_metrics_differ_where_expected():
    labels = labels_of([gt(0, BOX_A), gt(0, BOX_B)])
    dets = dets_of([det(0, 0.9, BOX_A), det(0, 0.8, BOX_C), det(0, 0.7, BOX_B)])
    area = mean_ap(MApMetric, labels, dets)
    eleven = mean_ap(VOC07MApMetric, labels, dets)
    assert area == pytest.approx(0.5 + 0.5 * 2.0 / 3.0)
    assert eleven == pytest.approx((6 + 5 * 2.0 / 3.0) / 11.0)
    assert eleven > area


@pytest.mark.parametrize('use_difficult, metric_cls, expected', [
    # difficult gt ignored: the one normal gt is found -> 1
    (False, MApMetric, 1.0), (False, VOC07MApMetric, 1.0),
    # difficult gt counted: recall stops at 1/2 with precision 1
    (True, MApMetric, 0.5), (True, VOC07MApMetric, 6.0 / 11.0),
])
def test_difficult_gt_missed(use_difficult, metric_cls, expected):
    labels = labels_of([gt(0, BOX_A), gt(0, BOX_B, difficult=1)])
    dets = dets_of([det(0, 0.8, BOX_A)])
    assert mean_ap(metric_cls, labels, dets, use_difficult=use_difficult) == pytest.approx(expected)


@pytest.mark.parametrize('use_difficult, expected_recall, expected_precision', [
    # the detection of the difficult object is neither TP nor FP
    (False, [1.0], [1.0]),
    # counted: both detections are TPs over two gts
    (True, [0.5, 1.0], [1.0, 1.0]),
])
def test_difficult_gt_detected(use_difficult, expected_recall, expected_precision):
    labels = labels_of([gt(0, BOX_A), gt(0, BOX_B, difficult=1)])
    dets = dets_of([det(0, 0.9, BOX_B), det(0, 0.8, BOX_A)])
    metric = evaluate(MApMetric, labels, dets, use_difficult=use_difficult)
    recall, precision = metric.pr_curves()['class_0']
    np.testing.assert_allclose(recall, expected_recall)
    np.testing.assert_allclose(precision, expected_precision)
    assert metric.mean_ap() == 1.0


def test_labels_without_difficult_column_count_every_object():
    labels = labels_of([gt(0, BOX_A)[:5], gt(0, BOX_B)[:5]], width=5)
    dets = dets_of([det(0, 0.8, BOX_A)])
    assert mean_ap(MApMetric, labels, dets) == pytest.approx(0.5)


def test_class_with_gts_but_no_detections_scores_zero_and_counts():
    labels = labels_of([gt(0, BOX_A), gt(1, BOX_B)])
    dets = dets_of([det(0, 0.9, BOX_A)])
    names, values = evaluate(MApMetric, labels, dets, class_names=['a', 'b']).get()
    assert values == [1.0, 0.0, 0.5]


def test_class_with_detections_but_no_gts_scores_zero_and_counts():
    labels = labels_of([gt(0, BOX_A)])
    dets = dets_of([det(0, 0.9, BOX_A), det(1, 0.8, BOX_B)])
    names, values = evaluate(MApMetric, labels, dets, class_names=['a', 'b']).get()
    assert values == [1.0, 0.0, 0.5]


def test_class_with_nothing_is_nan_and_left_out_of_mean():
    labels = labels_of([gt(0, BOX_A), gt(2, BOX_B)])
    dets = dets_of([det(0, 0.9, BOX_A), det(0, 0.8, BOX_C)])
    names, values = evaluate(MApMetric, labels, dets, class_names=['a', 'b', 'c']).get()
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 0.0
    assert values[3] == 0.5


def test_iou_exactly_at_threshold_is_not_a_match():
    labels = labels_of([gt(0, [0.0, 0.0, 0.5, 1.0])])
    dets = dets_of([det(0, 0.9, [0.0, 0.0, 1.0, 1.0])])
    assert pairwise_iou([[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 0.5, 1.0]])[0, 0] == 0.5
    assert mean_ap(MApMetric, labels, dets) == 0.0
    assert mean_ap(MApMetric, labels, dets, ovp_thresh=0.49) == 1.0


def test_padding_rows_and_negative_prediction_rows_are_ignored():
    labels = labels_of([gt(0, BOX_A)], pad_to=7)
    dets = dets_of([det(-1, 0.99, BOX_C), det(0, 0.9, BOX_A), det(-1, 0.95, BOX_B)], pad_to=20)
    assert mean_ap(MApMetric, labels, dets) == 1.0


def test_pred_idx_selects_output_and_ndarrays_are_accepted():
    labels = labels_of([gt(0, BOX_A), gt(0, BOX_B)])
    dets = dets_of([det(0, 0.9, BOX_C), det(0, 0.8, BOX_A)])
    metric = MApMetric(pred_idx=2)
    junk = mx.nd.zeros((1, 3))
    metric.update([mx.nd.array(labels)], [junk, junk, mx.nd.array(dets)])
    assert metric.mean_ap() == pytest.approx(0.25)
    assert metric.get() == ('mAP', pytest.approx(0.25))


def test_reset_forgets_previous_data():
    metric = evaluate(MApMetric, labels_of([gt(0, BOX_A)]), dets_of([det(0, 0.9, BOX_C)]))
    assert metric.mean_ap() == 0.0
    metric.reset()
    metric.update([labels_of([gt(0, BOX_A)])], [dets_of([det(0, 0.9, BOX_A)])])
    assert metric.mean_ap() == 1.0


def test_bad_shapes_and_class_ids_are_reported():
    metric = MApMetric(class_names=['a'])
    with pytest.raises(ValueError, match='labels must be'):
        metric.update([np.zeros((1, 4))], [dets_of([])])
    with pytest.raises(ValueError, match='detections must be'):
        metric.update([labels_of([])], [np.zeros((1, 3, 5))])
    with pytest.raises(ValueError, match='label class id 3 out of range for 1 class names'):
        metric.update([labels_of([gt(3, BOX_A)])], [dets_of([])])


def test_roc_output_path_writes_one_plot_per_class(tmp_path):
    labels = labels_of([gt(0, BOX_A), gt(1, BOX_B)])
    dets = dets_of([det(0, 0.9, BOX_A), det(1, 0.8, BOX_C)])
    metric = evaluate(MApMetric, labels, dets, class_names=['cat', 'potted plant'],
                      roc_output_path=str(tmp_path))
    metric.get()
    assert sorted(os.listdir(tmp_path)) == ['pr_cat.png', 'pr_potted_plant.png']


# ---------------------------------------------------------------- random data vs an oracle

def random_dataset(seed, num_images=14, num_classes=3):
    """Gts with some difficult ones, and detections: jittered copies of gts (some
    duplicated) plus random boxes, with random scores."""
    rng = np.random.RandomState(seed)
    labels, dets = [], []
    for _ in range(num_images):
        objects = []
        for _ in range(rng.randint(0, 5)):
            xy = rng.uniform(0, 0.6, 2)
            wh = rng.uniform(0.1, 0.4, 2)
            objects.append([rng.randint(num_classes)] + list(xy) + list(xy + wh)
                           + [float(rng.rand() < 0.2)])
        found = []
        for obj in objects:
            for _ in range(rng.choice([0, 1, 1, 2])):
                box = np.array(obj[1:5]) + rng.normal(0, 0.04, 4)
                found.append([obj[0], rng.rand()] + list(box))
        for _ in range(rng.randint(0, 4)):
            xy = rng.uniform(0, 0.7, 2)
            found.append([rng.randint(num_classes), rng.rand()] + list(xy) + list(xy + 0.2))
        labels.append(objects)
        dets.append(found)
    return labels, dets


def oracle_ap(labels, dets, cls, thresh, use_difficult, use_07):
    """Textbook VOC evaluation written independently: gather all detections of the class,
    sort by score, greedily match against per-image gts, then integrate."""
    gts = {i: [o for o in objs if o[0] == cls] for i, objs in enumerate(labels)}
    npos = sum(1 for objs in gts.values() for o in objs if use_difficult or not o[5])
    cands = sorted(((d[1], i, d[2:]) for i, ds in enumerate(dets) for d in ds if d[0] == cls),
                   key=lambda c: -c[0])
    used = {i: [False] * len(g) for i, g in gts.items()}
    tps, fps = [], []
    for _, i, box in cands:
        best, best_j = -1.0, -1
        for j, o in enumerate(gts[i]):
            iou = pairwise_iou([box], [o[1:5]])[0, 0]
            if iou > best:
                best, best_j = iou, j
        if best > thresh:
            if gts[i][best_j][5] and not use_difficult:
                continue
            tps.append(0 if used[i][best_j] else 1)
            used[i][best_j] = True
        else:
            tps.append(0)
        fps.append(1 - tps[-1])
    if npos == 0 and not tps:
        return float('nan')
    tp, fp = np.cumsum(tps), np.cumsum(fps)
    rec = tp / max(npos, 1)
    prec = tp / np.maximum(tp + fp, 1e-12)
    if use_07:
        return np.mean([max([p for p, r in zip(prec, rec) if r >= t] or [0])
                        for t in np.arange(0, 1.1, 0.1)])
    # area: each TP adds 1/npos recall at the best precision reachable from there on
    return sum(max(prec[k:]) for k in range(len(tps)) if tps[k]) / max(npos, 1)


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('use_difficult', [False, True])
@pytest.mark.parametrize('metric_cls', BOTH)
def test_random_data_matches_oracle_and_ignores_batching(seed, use_difficult, metric_cls):
    labels, dets = random_dataset(seed)
    whole = metric_cls(use_difficult=use_difficult, class_names=['a', 'b', 'c'])
    whole.update([labels_of(*labels)], [dets_of(*dets)])
    split = metric_cls(use_difficult=use_difficult, class_names=['a', 'b', 'c'])
    for start, stop in [(0, 5), (5, 6), (6, 14)]:
        # each batch padded to its own sizes, as iterators do
        split.update([mx.nd.array(labels_of(*labels[start:stop], pad_to=stop - start + 3))],
                     [mx.nd.array(dets_of(*dets[start:stop], pad_to=11))])
    expected = [oracle_ap(labels, dets, c, 0.5, use_difficult, metric_cls.use_07_metric)
                for c in range(3)]
    np.testing.assert_allclose(whole.class_aps(), expected, rtol=1e-6)
    # float32 batch arrays vs float32 whole arrays: identical values, identical result
    assert split.get() == whole.get()


def test_average_precision_of_empty_curve_is_zero():
    assert average_precision([], [], use_07_metric=False) == 0.0
    assert average_precision([], [], use_07_metric=True) == 0.0


def test_one_host_copy_per_batch(monkeypatch):
    calls = []
    real_asnumpy = mx.nd.NDArray.asnumpy

    def counting_asnumpy(self):
        calls.append(self.shape)
        return real_asnumpy(self)
    monkeypatch.setattr(mx.nd.NDArray, 'asnumpy', counting_asnumpy)
    labels = labels_of([gt(0, BOX_A)], [gt(1, BOX_B), gt(0, BOX_C)])
    dets = dets_of([det(0, 0.9, BOX_A)], [det(1, 0.8, BOX_B), det(0, 0.7, BOX_A)])
    metric = MApMetric()
    metric.update([mx.nd.array(labels)], [mx.nd.array(dets)])
    assert len(calls) == 1
    # class 0: TP (image 1), then a FP in image 2 whose gt stays missed -> recall 1/2 at 1
    assert metric.class_aps() == [pytest.approx(0.5), 1.0]
