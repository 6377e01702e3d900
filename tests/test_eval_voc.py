"""File-based VOC devkit evaluation: hand values and agreement with the in-memory metric."""
import os

import numpy as np
import pytest

from dataset.pascal_voc import normalised_voc_objects
from evaluate.eval_metric import MApMetric, VOC07MApMetric
from evaluate.eval_voc import (evaluate_voc_detections, parse_voc_rec, read_detection_file,
                               voc_eval, voc_pixel_boxes, write_voc_results)

CLASSES = ['cat', 'dog']
# image id -> (width, height), objects (name, xmin, ymin, xmax, ymax, difficult) 1-based pixels
IMAGES = {
    '000001': ((200, 100), [('cat', 11, 11, 80, 60, 0), ('dog', 101, 21, 190, 90, 0)]),
    '000002': ((120, 160), [('cat', 1, 1, 60, 80, 0), ('cat', 61, 81, 120, 160, 1)]),
}


def write_xml(path, size, objects):
    parts = ['<annotation><filename>%s.jpg</filename>' % os.path.basename(path)[:-4],
             '<size><width>%d</width><height>%d</height><depth>3</depth></size>' % size]
    for name, x1, y1, x2, y2, difficult in objects:
        parts.append('<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin>'
                     '<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>'
                     % (name, difficult, x1, y1, x2, y2))
    with open(path, 'w') as f:
        f.write(''.join(parts) + '</annotation>')


@pytest.fixture
def devkit(tmp_path):
    voc = tmp_path / 'VOC2007'
    (voc / 'Annotations').mkdir(parents=True)
    (voc / 'ImageSets' / 'Main').mkdir(parents=True)
    for image_id, (size, objects) in IMAGES.items():
        write_xml(str(voc / 'Annotations' / (image_id + '.xml')), size, objects)
    (voc / 'ImageSets' / 'Main' / 'test.txt').write_text('\n'.join(IMAGES) + '\n')
    return tmp_path


def normalised_labels(image_id):
    size, objects = IMAGES[image_id]
    rows = normalised_voc_objects(objects, size)
    return np.array([[CLASSES.index(r[0])] + list(r[1:]) for r in rows], dtype=np.float64)


def detections_from_gt(image_id, score, keep, jitter=0.0):
    labels = normalised_labels(image_id)[keep]
    return np.array([[l[0], score - 0.01 * i] + list(l[1:5] + jitter)
                     for i, l in enumerate(labels)]).reshape(-1, 6)


def scenario():
    """cat: TP (image 1), an FP above it, the difficult cat in image 2 detected (ignored),
    the normal cat of image 2 missed; dog: found once plus a duplicate."""
    fp = np.array([[0, 0.95, 0.6, 0.6, 0.7, 0.7]])
    image1 = np.vstack([detections_from_gt('000001', 0.9, [0, 1]), fp,
                        detections_from_gt('000001', 0.5, [1], jitter=0.005)])
    image2 = detections_from_gt('000002', 0.8, [1])
    return [image1, image2]


def in_memory(metric_cls):
    labels = [normalised_labels(i) for i in IMAGES]
    rows = max(len(l) for l in labels)
    label_batch = -np.ones((2, rows, 6))
    det_batch = -np.ones((2, 5, 6))
    for i, (l, d) in enumerate(zip(labels, scenario())):
        label_batch[i, :len(l)] = l
        det_batch[i, :len(d)] = d
    metric = metric_cls(class_names=CLASSES)
    metric.update([label_batch], [det_batch])
    return dict(zip(*metric.get()))


@pytest.mark.parametrize('year, metric_cls, expected_cat', [
    # cat: FP (0.95) then TP (0.9) over 2 counted gts -> recall 1/2 at precision 1/2
    (2007, VOC07MApMetric, 3.0 / 11.0),   # 11-point for 2007
    (2012, MApMetric, 0.25),              # area for 2010+
])
def test_devkit_evaluation_matches_hand_values_and_metric(devkit, year, metric_cls,
                                                          expected_cat):
    if year != 2007:
        os.rename(devkit / 'VOC2007', devkit / ('VOC%d' % year))
    sizes = [IMAGES[i][0] for i in IMAGES]
    aps = evaluate_voc_detections(str(devkit), year, 'test', CLASSES, list(IMAGES), scenario(),
                                  sizes)
    assert aps['cat'] == pytest.approx(expected_cat)
    assert aps['dog'] == pytest.approx(1.0)
    assert aps['mAP'] == pytest.approx((expected_cat + 1.0) / 2)
    assert aps == pytest.approx(in_memory(metric_cls))
    written = devkit / 'results' / ('VOC%d' % year) / 'Main' / 'comp4_det_test_cat.txt'
    assert written.read_text().splitlines()[0].startswith('000001 0.900000 11.0 11.0 80.0 60.0')


def test_use_difficult_counts_the_difficult_cat(devkit):
    sizes = [IMAGES[i][0] for i in IMAGES]
    template = str(devkit / 'res_{}.txt')
    write_voc_results(template, list(IMAGES), scenario(), sizes, CLASSES)
    annopath = str(devkit / 'VOC2007' / 'Annotations' / '{}.xml')
    imageset = str(devkit / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt')
    rec, prec, ap = voc_eval(template, annopath, imageset, 'cat', use_difficult=True,
                             cache_dir=str(devkit / 'cache'))
    # FP, TP, TP(difficult) over 3 gts
    np.testing.assert_allclose(rec, [0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(prec, [0, 1 / 2, 2 / 3])
    # the envelope lifts precision at recall 1/3 to 2/3: area = 2 * (1/3 * 2/3)
    assert ap == pytest.approx(4 / 9)
    assert os.path.isfile(str(devkit / 'cache' / 'test.txt_annots.pkl'))
    # the cache is reused and gives the same answer
    assert voc_eval(template, annopath, imageset, 'cat', use_difficult=True,
                    cache_dir=str(devkit / 'cache'))[2] == ap


def test_pixel_conversion_inverts_dataset_normalisation():
    size, objects = IMAGES['000001']
    normalised = np.array([r[1:5] for r in normalised_voc_objects(objects, size)])
    np.testing.assert_allclose(voc_pixel_boxes(normalised, *size),
                               [o[1:5] for o in objects], atol=1e-9)


def test_parse_voc_rec(devkit):
    objects = parse_voc_rec(str(devkit / 'VOC2007' / 'Annotations' / '000002.xml'))
    assert objects == [{'name': 'cat', 'difficult': 0, 'bbox': [1, 1, 60, 80]},
                       {'name': 'cat', 'difficult': 1, 'bbox': [61, 81, 120, 160]}]


def test_bad_results_line_names_file_and_line(tmp_path):
    path = tmp_path / 'dets.txt'
    path.write_text('000001 0.9 1 2 3 4\n000002 0.8 1 2 x 4\n')
    with pytest.raises(ValueError, match=r'dets.txt:2: '):
        read_detection_file(str(path))
    path.write_text('000001 0.9 1 2 3\n')
    with pytest.raises(ValueError, match=r'dets.txt:1: expected "image_id score'):
        read_detection_file(str(path))


def test_unknown_image_id_in_results_is_reported(devkit):
    template = str(devkit / 'res_{}.txt')
    (devkit / 'res_cat.txt').write_text('999999 0.9 1 1 10 10\n')
    with pytest.raises(ValueError, match='image ids not in .*test.txt: 999999'):
        voc_eval(template, str(devkit / 'VOC2007' / 'Annotations' / '{}.xml'),
                 str(devkit / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt'), 'cat')
