"""COCO metric: agreement with pycocotools run directly, id/size mapping, .lst helpers."""
import contextlib
import io
import os

import cv2
import mxnet as mx
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from evaluate.coco_metric import (STAT_NAMES, CocoMetric, category_ids_for, coco_from_imglist,
                                  image_ids_from_imglist, load_coco)

# non-contiguous category ids whose id order differs from the model's class order
CATEGORIES = [{'id': 3, 'name': 'cat'}, {'id': 8, 'name': 'dog'}, {'id': 11, 'name': 'bird'}]
MODEL_CLASSES = ['dog', 'cat', 'bird']
IMAGE_SIZES = {101: (640, 480), 205: (200, 300), 307: (1000, 800), 409: (320, 320)}


def ground_truth(seed=0):
    """Boxes of all three COCO size ranges, one crowd region, an image without objects."""
    rng = np.random.RandomState(seed)
    annotations = []
    for image_id, (width, height) in IMAGE_SIZES.items():
        if image_id == 409:
            continue
        for side in (20, 60, 200):
            x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': CATEGORIES[rng.randint(3)]['id'],
                                'bbox': [x, y, side * rng.uniform(0.8, 1.2), side],
                                'area': side * side, 'iscrowd': 0})
    annotations[4]['iscrowd'] = 1
    images = [{'id': i, 'file_name': 'img_%d.jpg' % i, 'width': w, 'height': h}
              for i, (w, h) in IMAGE_SIZES.items()]
    return {'images': images, 'annotations': annotations, 'categories': CATEGORIES}


def model_detections(gt, seed=1, rows=12):
    """(num_images, rows, 6) normalised detections: jittered gts (some with the wrong
    class), random boxes, -1 padding rows."""
    rng = np.random.RandomState(seed)
    cat_to_class = {c['id']: MODEL_CLASSES.index(c['name']) for c in CATEGORIES}
    out = -np.ones((len(IMAGE_SIZES), rows, 6), dtype=np.float32)
    for k, (image_id, (width, height)) in enumerate(IMAGE_SIZES.items()):
        dets = []
        for ann in (a for a in gt['annotations'] if a['image_id'] == image_id):
            x, y, w, h = np.array(ann['bbox']) + rng.normal(0, 3, 4)
            cls = cat_to_class[ann['category_id']] if rng.rand() < 0.8 else rng.randint(3)
            dets.append([cls, rng.rand(), x / width, y / height, (x + w) / width,
                         (y + h) / height])
        for _ in range(3):
            x, y = rng.uniform(0, 0.7, 2)
            dets.append([rng.randint(3), rng.rand(), x, y, x + 0.2, y + 0.25])
        out[k, :len(dets)] = dets
    return out


def run_pycocotools_directly(gt, dets):
    """The reference: convert detections by hand and call COCOeval as its docs show."""
    name_to_cat = {c['name']: c['id'] for c in CATEGORIES}
    results = []
    for (image_id, (width, height)), image_dets in zip(IMAGE_SIZES.items(), dets):
        for cls, score, x1, y1, x2, y2 in image_dets.astype(np.float64):
            if cls < 0:
                continue
            results.append({'image_id': image_id,
                            'category_id': name_to_cat[MODEL_CLASSES[int(cls)]],
                            'bbox': [x1 * width, y1 * height, (x2 - x1) * width,
                                     (y2 - y1) * height], 'score': score})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_agrees_with_pycocotools_run_directly():
    gt = ground_truth()
    dets = model_detections(gt)
    metric = CocoMetric(gt, list(IMAGE_SIZES), class_names=MODEL_CLASSES)
    metric.update([None], [mx.nd.array(dets[:3])])   # batches of 3 and 1
    metric.update([None], [dets[3:]])
    reference = run_pycocotools_directly(gt, dets)
    names, values = metric.get()
    assert names == STAT_NAMES
    np.testing.assert_allclose(values, reference.stats[:6], rtol=0, atol=1e-12)
    assert 0.1 < values[0] < 0.99            # a real, non-trivial score
    for cls, name in enumerate(MODEL_CLASSES):
        slot = sorted(c['id'] for c in CATEGORIES).index(
            [c['id'] for c in CATEGORIES if c['name'] == name][0])
        precision = reference.eval['precision'][:, :, slot, 0, -1]
        assert metric.class_aps()[cls] == pytest.approx(precision[precision > -1].mean())
    assert 'Average Precision' in metric.summary_text
    recall, precision = metric.pr_curves()['cat']
    assert recall.shape == precision.shape == (101,)


def test_perfect_detections_score_one_and_missing_sizes_are_minus_one():
    gt = ground_truth()
    gt['annotations'] = [a for a in gt['annotations'] if a['area'] > 96 ** 2]  # large only
    dets = -np.ones((len(IMAGE_SIZES), 4, 6), dtype=np.float32)
    for k, (image_id, (width, height)) in enumerate(IMAGE_SIZES.items()):
        mine = [a for a in gt['annotations'] if a['image_id'] == image_id]
        for j, ann in enumerate(mine):
            x, y, w, h = ann['bbox']
            cls = MODEL_CLASSES.index([c['name'] for c in CATEGORIES
                                       if c['id'] == ann['category_id']][0])
            dets[k, j] = [cls, 0.9, x / width, y / height, (x + w) / width, (y + h) / height]
    metric = CocoMetric(gt, list(IMAGE_SIZES), class_names=MODEL_CLASSES)
    metric.update([None], [dets])
    stats = metric.stats()
    assert stats['AP'] == pytest.approx(1.0) and stats['APl'] == pytest.approx(1.0)
    assert stats['APs'] == -1.0 and stats['APm'] == -1.0


def test_only_seen_images_are_evaluated_and_no_detections_give_zero():
    gt = ground_truth()
    metric = CocoMetric(gt, list(IMAGE_SIZES), class_names=MODEL_CLASSES)
    assert np.isnan(metric.stats()['AP'])
    metric.update([None], [-np.ones((1, 5, 6))])
    assert metric.stats()['AP'] == 0.0
    assert metric.evaluate().params.imgIds == [101]
    with pytest.raises(ValueError, match=r'more images evaluated \(5\) than image ids given'):
        metric.update([None], [-np.ones((4, 5, 6))])


def test_category_mapping():
    coco = load_coco(ground_truth())
    assert category_ids_for(coco, MODEL_CLASSES) == [8, 3, 11]
    assert category_ids_for(coco) == [3, 8, 11]
    with pytest.raises(ValueError, match='class names not among the COCO categories: horse'):
        category_ids_for(coco, ['cat', 'horse'])


def test_coco_set_built_from_a_list_file(tmp_path):
    sizes = [(64, 48), (30, 90)]
    labels = [[[1, 0.25, 0.5, 0.75, 1.0, 0], [0, 0.0, 0.0, 0.5, 0.5, 1]],
              [[1, 0.1, 0.1, 0.9, 0.5, 0]]]
    lines = []
    for k, ((w, h), label) in enumerate(zip(sizes, labels)):
        os.makedirs(str(tmp_path / 'sub'), exist_ok=True)
        cv2.imwrite(str(tmp_path / 'sub' / ('%d.png' % k)), np.zeros((h, w, 3), np.uint8))
        values = ['2', '6'] + ['%g' % v for row in label for v in row]
        lines.append('\t'.join([str(k)] + values + ['sub/%d.png' % k]))
    lst = tmp_path / 'val.lst'
    lst.write_text('\n'.join(lines) + '\n')
    gt = coco_from_imglist(str(lst), str(tmp_path), ['a', 'b'])
    assert [(i['width'], i['height']) for i in gt['images']] == sizes
    first = gt['annotations'][0]
    assert first['bbox'] == pytest.approx([16.0, 24.0, 32.0, 24.0])
    assert first['category_id'] == 2 and first['iscrowd'] == 0
    assert gt['annotations'][1]['iscrowd'] == 1           # difficult -> ignored region
    assert image_ids_from_imglist(str(lst), load_coco(gt)) == [0, 1]
    # the labels themselves as detections are perfect
    dets = -np.ones((2, 2, 6), np.float32)
    for k, label in enumerate(labels):
        for j, row in enumerate(label):
            dets[k, j] = [row[0], 0.9] + row[1:5]
    metric = CocoMetric(gt, [0, 1], class_names=['a', 'b'])
    metric.update([None], [dets])
    assert metric.stats()['AP'] == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError, match='line 1: image not found'):
        coco_from_imglist(str(lst), str(tmp_path / 'elsewhere'), ['a', 'b'])


def test_list_paths_unknown_to_the_coco_set_are_reported(tmp_path):
    lst = tmp_path / 'val.lst'
    lst.write_text('0\t2\t6\t0\t0.1\t0.1\t0.2\t0.2\t0\tval/img_101.jpg\n'
                   '1\t2\t6\t0\t0.1\t0.1\t0.2\t0.2\t0\tval/missing.jpg\n')
    with pytest.raises(ValueError, match=r"val.lst:2: image 'val/missing.jpg' is not found"):
        image_ids_from_imglist(str(lst), load_coco(ground_truth()))
