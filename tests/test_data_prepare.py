"""Dataset readers and RecordIO preparation: VOC/COCO/YOLO/XML-folder parsing, the .lst/.rec
round trip through the C++ iterator, bad-input reports, atomic outputs and the CLI."""
import json
import os
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.config import cfg
from dataset import imdb as imdb_mod
from dataset import prepare as prepare_mod
from dataset.concat_db import ConcatDB
from dataset.factory import load_imdb
from dataset.imdb import load_class_names, read_imglist
from dataset.iterator import DetRecordIter
from dataset.mscoco import Coco
from dataset.pascal_voc import PascalVoc, load_pascal
from dataset.prepare import PrepareError, prepare_imdb
from dataset.voc_folder import VocFolder
from dataset.yolo_format import YoloFormat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The official COCO category ids in their official order (the oracle for the 0..79 mapping).
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50,
            51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76,
            77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def write_image(path, width, height, seed=0):
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, rng.randint(0, 255, (height, width, 3), dtype=np.uint8))


def voc_xml(width, height, objects, filename='x.jpg'):
    """objects: (name, xmin, ymin, xmax, ymax, difficult) in VOC 1-based pixels."""
    body = ''.join(
        '<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%s</xmin><ymin>%s</ymin>'
        '<xmax>%s</xmax><ymax>%s</ymax></bndbox></object>' % (n, d, x1, y1, x2, y2)
        for n, x1, y1, x2, y2, d in objects)
    return ('<annotation><filename>%s</filename><size><width>%d</width><height>%d</height>'
            '<depth>3</depth></size>%s</annotation>' % (filename, width, height, body))


def make_voc(devkit, year, images, image_set='trainval'):
    """images: {id: (width, height, objects)}; writes JPEGs, XMLs and the set list."""
    base = os.path.join(str(devkit), 'VOC%s' % year)
    os.makedirs(os.path.join(base, 'Annotations'), exist_ok=True)
    os.makedirs(os.path.join(base, 'ImageSets', 'Main'), exist_ok=True)
    for k, (index, (width, height, objects)) in enumerate(images.items()):
        write_image(os.path.join(base, 'JPEGImages', index + '.jpg'), width, height, seed=k)
        with open(os.path.join(base, 'Annotations', index + '.xml'), 'w') as f:
            f.write(voc_xml(width, height, objects, index + '.jpg'))
    with open(os.path.join(base, 'ImageSets', 'Main', image_set + '.txt'), 'w') as f:
        f.write(''.join(i + '\n' for i in images))
    return base


GOOD_VOC = {
    '000001': (200, 100, [('dog', 11, 21, 101, 81, 0), ('person', 1, 1, 200, 100, 1)]),
    '000002': (160, 240, [('car', 17, 25, 97, 217, 0)]),
    '000003': (300, 200, [('cat', 31, 41, 151, 121, 0), ('cat', 151, 101, 281, 191, 0),
                          ('tvmonitor', 5, 5, 45, 35, 0)]),
}


def expected_rows(width, height, objects, classes):
    """Hand conversion: 0-based class ids, VOC pixels minus 1 over the image size."""
    return np.array([[classes.index(n), (x1 - 1) / width, (y1 - 1) / height, (x2 - 1) / width,
                      (y2 - 1) / height, d] for n, x1, y1, x2, y2, d in objects], np.float32)


def test_voc_to_lst_to_rec_to_iterator_round_trip(tmp_path):
    make_voc(tmp_path / 'VOCdevkit', 2007, GOOD_VOC)
    voc = PascalVoc('trainval', 2007, str(tmp_path / 'VOCdevkit'))
    target = str(tmp_path / 'out' / 'train.lst')
    result = prepare_imdb(voc, target, shuffle=False, progress=False)
    classes = load_class_names('pascal_voc.names')
    expected = [expected_rows(w, h, objs, classes) for w, h, objs in GOOD_VOC.values()]

    entries = read_imglist(result.lst)
    assert [e[2] for e in entries] == [i + '.jpg' for i in GOOD_VOC]
    for (_, label, _), want in zip(entries, expected):
        np.testing.assert_allclose(label, want, atol=1e-5)
    assert sorted(os.listdir(tmp_path / 'out')) == ['train.idx', 'train.lst', 'train.rec']

    it = DetRecordIter(result.rec, 3, 128, **cfg.valid)
    assert it.provide_label[0].shape == (3, 3, 6) and it.label_pad_width == 2 + 6 * 3
    labels = next(iter(it)).label[0].asnumpy()
    for got, want in zip(labels, expected):
        np.testing.assert_allclose(got[:len(want)], want, atol=1e-3)
        assert (got[len(want):] == -1).all()
    assert result.objects_per_class()['cat'] == 2 and result.label_width == 20


def test_voc_years_and_sets_are_combined(tmp_path):
    make_voc(tmp_path, 2007, dict(list(GOOD_VOC.items())[:2]))
    make_voc(tmp_path, 2012, dict(list(GOOD_VOC.items())[2:]))
    both = load_pascal('trainval', '2007,2012', str(tmp_path))
    assert isinstance(both, ConcatDB) and both.num_images == 3
    assert both.image_set_index == ['000001', '000002', '000003']
    with pytest.raises(FileNotFoundError, match='VOC2010'):
        load_pascal('trainval', '2010', str(tmp_path))


def test_voc_class_subset_skips_other_classes(tmp_path):
    make_voc(tmp_path, 2007, GOOD_VOC)
    voc = PascalVoc('trainval', 2007, str(tmp_path), class_names='cat,dog')
    assert voc.classes == ['cat', 'dog']
    assert voc.image_set_index == ['000001', '000003']  # 000002 has only a car: dropped
    np.testing.assert_array_equal(voc.label_from_index(1)[:, 0], [0, 0])
    assert voc.issues.counts(False)[imdb_mod.UNKNOWN_CLASS] == 3  # person, car, tvmonitor
    assert voc.issues.counts(True)[imdb_mod.NO_OBJECTS] == 1


def write_raw(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def test_bad_inputs_are_reported_with_file_and_reason_and_skipped(tmp_path):
    images = dict(GOOD_VOC)
    images.update({
        'flipped': (100, 100, [('dog', 60, 10, 20, 50, 0), ('cat', 10, 10, 50, 50, 0)]),
        'outside': (100, 100, [('dog', 10, 10, 180, 50, 0), ('cat', 10, 10, 50, 50, 0)]),
        'unknown': (100, 100, [('unicorn', 10, 10, 50, 50, 0), ('cat', 10, 10, 50, 50, 0)]),
        'corrupt': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
        'truncated': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
        'noimage': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
        'resized': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
        'badxml': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
        'noxml': (100, 100, [('cat', 10, 10, 50, 50, 0)]),
    })
    base = make_voc(tmp_path, 2007, images)
    jpeg = lambda name: os.path.join(base, 'JPEGImages', name + '.jpg')  # noqa: E731
    write_raw(jpeg('corrupt'), b'this is not an image at all')
    with open(jpeg('truncated'), 'rb') as f:
        write_raw(jpeg('truncated'), f.read()[:-200])
    os.remove(jpeg('noimage'))
    write_image(jpeg('resized'), 90, 100)
    write_raw(os.path.join(base, 'Annotations', 'badxml.xml'), b'<annotation><size>')
    os.remove(os.path.join(base, 'Annotations', 'noxml.xml'))

    voc = PascalVoc('trainval', 2007, str(tmp_path))
    result = prepare_imdb(voc, str(tmp_path / 'out.lst'), shuffle=False, progress=False)

    by_kind = {(i.kind, os.path.basename(i.source).split('.')[0]) for i in result.issues}
    assert by_kind == {
        (imdb_mod.EMPTY_BOX, 'flipped'), (imdb_mod.BOX_OUTSIDE, 'outside'),
        (imdb_mod.UNKNOWN_CLASS, 'unknown'), (imdb_mod.CORRUPT_IMAGE, 'corrupt'),
        (imdb_mod.CORRUPT_IMAGE, 'truncated'), (imdb_mod.MISSING_IMAGE, 'noimage'),
        (imdb_mod.SIZE_MISMATCH, 'resized'), (imdb_mod.BAD_ANNOTATION, 'badxml'),
        (imdb_mod.MISSING_ANNOTATION, 'noxml')}
    details = {os.path.basename(i.source).split('.')[0]: i.detail for i in result.issues}
    assert details['flipped'] == 'object 0 (dog) box (0.59, 0.09, 0.19, 0.49)'
    assert 'unicorn' in details['unknown'] and '90x100' in details['resized']
    assert 'truncated' in details['truncated']

    packed = [e[2] for e in read_imglist(result.lst)]
    assert packed == ['000001.jpg', '000002.jpg', '000003.jpg', 'flipped.jpg', 'outside.jpg',
                      'unknown.jpg']
    assert len(read_lines(result.idx)) == 6
    summary = result.summary()
    assert 'dropped images: 6' in summary and 'skipped objects: 3' in summary
    for kind in (imdb_mod.CORRUPT_IMAGE, imdb_mod.MISSING_ANNOTATION, imdb_mod.SIZE_MISMATCH,
                 imdb_mod.BOX_OUTSIDE, imdb_mod.UNKNOWN_CLASS):
        assert kind in summary
    report = read_lines(result.issues_file)
    assert len(report) == 9 and result.issues_file in summary
    outside = next(line for line in report if imdb_mod.BOX_OUTSIDE in line)
    assert outside == ('%s: box outside the image: object 0 (dog) normalised box (0.09, 0.09, '
                       '1.79, 0.49) is outside [0, 1] (object skipped)'
                       % os.path.join(base, 'Annotations', 'outside.xml'))
    assert any(line.endswith('corrupt.jpg: unreadable or corrupt image: cannot be decoded '
                             '(27 bytes) (image dropped)') for line in report)


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


def test_failure_midway_leaves_no_half_written_outputs(tmp_path, monkeypatch):
    make_voc(tmp_path, 2007, GOOD_VOC)
    voc = PascalVoc('trainval', 2007, str(tmp_path))
    target = str(tmp_path / 'out' / 'train.lst')
    first = prepare_imdb(voc, target, shuffle=False, progress=False)
    with open(first.rec, 'rb') as f:
        complete_rec = f.read()

    real_encode = prepare_mod.encode_image

    def failing_encode(record, *args):
        if record.index == '000003':
            raise KeyboardInterrupt('simulated interruption')
        return real_encode(record, *args)

    monkeypatch.setattr(prepare_mod, 'encode_image', failing_encode)
    with pytest.raises(KeyboardInterrupt):
        prepare_imdb(voc, target, shuffle=False, progress=False)
    assert sorted(os.listdir(tmp_path / 'out')) == ['train.idx', 'train.lst', 'train.rec']
    with open(first.rec, 'rb') as f:
        assert f.read() == complete_rec


def test_nothing_left_to_pack_is_an_error(tmp_path):
    make_voc(tmp_path, 2007, {'a': (50, 50, [('cat', 5, 5, 20, 20, 0)])})
    os.remove(os.path.join(tmp_path, 'VOC2007', 'JPEGImages', 'a.jpg'))
    voc = PascalVoc('trainval', 2007, str(tmp_path))
    with pytest.raises(PrepareError, match='no images left.*1 problems.*x.issues.txt'):
        prepare_imdb(voc, str(tmp_path / 'x.lst'), progress=False)
    assert sorted(os.listdir(tmp_path)) == ['VOC2007', 'x.issues.txt']  # no outputs or temps
    assert read_lines(str(tmp_path / 'x.issues.txt')) == [
        '%s: missing image file: No such file or directory (image dropped)'
        % os.path.join(str(tmp_path), 'VOC2007', 'JPEGImages', 'a.jpg')]


def test_true_negative_images_flow_through_to_the_iterator(tmp_path):
    images = {'withobj': GOOD_VOC['000002'], 'empty': (120, 80, []),
              'onlyunknown': (120, 80, [('unicorn', 5, 5, 20, 20, 0)])}
    make_voc(tmp_path, 2007, images)
    dropped = PascalVoc('trainval', 2007, str(tmp_path))
    assert dropped.image_set_index == ['withobj']
    kept = PascalVoc('trainval', 2007, str(tmp_path), true_negative_images=True)
    assert kept.image_set_index == ['withobj', 'empty', 'onlyunknown']
    result = prepare_imdb(kept, str(tmp_path / 'neg.lst'), shuffle=False, progress=False)
    assert [len(e[1]) for e in read_imglist(result.lst)] == [1, 0, 0]
    assert 'true negatives): 2' in result.summary()

    for aug in (cfg.valid, cfg.train):
        it = DetRecordIter(result.rec, 3, 96, **dict(aug, shuffle=False))
        labels = next(iter(it)).label[0].asnumpy()
        assert labels.shape == (3, 1, 6)
        assert labels[0, 0, 0] == 6 and (labels[1:] == -1).all()  # 6: car


def coco_json(path, annotations, images):
    categories = [{'id': i, 'name': n} for i, n in zip(COCO_IDS, load_class_names('mscoco.names'))]
    categories.reverse()  # the mapping must not depend on the order the JSON lists them in
    with open(path, 'w') as f:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)


def test_coco_non_contiguous_ids_map_to_0_to_79(tmp_path):
    images = [{'id': 7, 'file_name': 'a.jpg', 'width': 200, 'height': 100},
              {'id': 9, 'file_name': 'b.jpg', 'width': 100, 'height': 100}]
    annotations = [
        {'image_id': 7, 'category_id': 1, 'bbox': [20, 10, 100, 50], 'iscrowd': 0},
        {'image_id': 7, 'category_id': 13, 'bbox': [0, 0, 10, 10], 'iscrowd': 0},
        {'image_id': 7, 'category_id': 90, 'bbox': [100, 50, 50, 25], 'iscrowd': 1},
        {'image_id': 9, 'category_id': 44, 'bbox': [10, 20, 30, 40], 'iscrowd': 0},
        {'image_id': 9, 'category_id': 12, 'bbox': [10, 20, 30, 40], 'iscrowd': 0},
    ]
    coco_json(tmp_path / 'instances.json', annotations, images)
    coco = Coco(str(tmp_path / 'instances.json'), str(tmp_path / 'images'))
    assert coco.num_classes == 80 and coco.classes[79] == 'toothbrush'
    np.testing.assert_allclose(coco.label_from_index(0), [
        [0, 0.1, 0.1, 0.6, 0.6, 0], [11, 0, 0, 0.05, 0.1, 0], [79, 0.5, 0.5, 0.75, 0.75, 1]])
    np.testing.assert_allclose(coco.label_from_index(1), [[39, 0.1, 0.2, 0.4, 0.6, 0]])
    assert coco.image_path_from_index(1) == os.path.join(str(tmp_path / 'images'), 'b.jpg')
    (issue,) = coco.issues
    assert issue.kind == imdb_mod.UNKNOWN_CLASS and 'category id 12' in issue.detail


def test_coco_missing_field_names_the_entry(tmp_path):
    coco_json(tmp_path / 'bad.json', [{'image_id': 1, 'category_id': 1}], [])
    with pytest.raises(ValueError, match=r'annotations\[0\].*bbox'):
        Coco(str(tmp_path / 'bad.json'), str(tmp_path))


def test_yolo_labels_convert_to_corner_boxes(tmp_path):
    (tmp_path / 'labels').mkdir()
    (tmp_path / 'labels' / 'a.txt').write_text('1 0.5 0.5 0.2 0.4\n0 0.25 0.75 0.5 0.5\n')
    (tmp_path / 'labels' / 'b.txt').write_text('0 0.5 0.5 0.2\n')
    (tmp_path / 'labels' / 'c.txt').write_text('5 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n')
    (tmp_path / 'list.txt').write_text('a\nb.jpg\nc\nmissing\n')
    yolo = YoloFormat(str(tmp_path / 'list.txt'), str(tmp_path / 'images'),
                      str(tmp_path / 'labels'), ['cat', 'dog'])
    assert yolo.image_set_index == ['a', 'c']
    np.testing.assert_allclose(yolo.label_from_index(0), [[1, 0.4, 0.3, 0.6, 0.7, 0],
                                                          [0, 0.0, 0.5, 0.5, 1.0, 0]], atol=1e-6)
    assert yolo.image_path_from_index(0) == os.path.join(str(tmp_path / 'images'), 'a.jpg')
    issues = {(i.kind, os.path.basename(i.source)): i.detail for i in yolo.issues}
    assert 'line 1: expected 5 numbers' in issues[(imdb_mod.BAD_ANNOTATION, 'b.txt')]
    assert (imdb_mod.UNKNOWN_CLASS, 'c.txt') in issues
    assert (imdb_mod.MISSING_ANNOTATION, 'missing.txt') in issues


def test_voc_folder_infers_sorted_classes_and_finds_images(tmp_path):
    for name, objects in (('x', [('zebra', 1, 1, 10, 10, 0)]), ('y', [('ant', 2, 2, 20, 30, 1)])):
        (tmp_path / (name + '.xml')).write_text(voc_xml(40, 40, objects, filename=name + '.png'))
        write_image(str(tmp_path / (name + '.png')), 40, 40)
    folder = VocFolder(str(tmp_path))
    assert folder.classes == ['ant', 'zebra'] and folder.image_set_index == ['x', 'y']
    np.testing.assert_allclose(folder.label_from_index(1),
                               [[0, 1 / 40, 1 / 40, 19 / 40, 29 / 40, 1]])
    result = prepare_imdb(folder, str(tmp_path / 'f.lst'), progress=False)
    assert result.num_images == 2 and not list(result.issues)


def test_class_names_from_list_string_file_and_builtin(tmp_path):
    (tmp_path / 'my.names').write_text('a\nb\n\n')
    assert load_class_names(str(tmp_path / 'my.names')) == ['a', 'b']
    assert load_class_names('a, b') == ['a', 'b'] and load_class_names(['x']) == ['x']
    assert len(load_class_names('pascal_voc')) == 20 and len(load_class_names('mscoco.names')) == 80
    with pytest.raises(ValueError, match='duplicate'):
        load_class_names('a,b,a')


def test_cli_prepares_pascal_and_prints_summary(tmp_path):
    make_voc(tmp_path / 'VOCdevkit', 2007, GOOD_VOC, image_set='test')
    target = tmp_path / 'val.lst'
    out = subprocess.run(
        [sys.executable, os.path.join('tools', 'prepare_dataset.py'), '--dataset', 'pascal',
         '--year', '2007', '--set', 'test', '--root', str(tmp_path / 'VOCdevkit'),
         '--target', str(target), '--no-shuffle', '--no-progress', '--num-thread', '2'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '3 images, 6 objects' in out.stdout and 'label width 20' in out.stdout
    assert [e[2] for e in read_imglist(str(target))] == ['000001.jpg', '000002.jpg', '000003.jpg']
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'val.idx'), str(tmp_path / 'val.rec'),
                                           'r')
    header, _ = mx.recordio.unpack(reader.read_idx(1))
    reader.close()
    np.testing.assert_allclose(header.label, [2, 6, 6, 16 / 160, 24 / 240, 96 / 160, 216 / 240, 0])


def test_dataset_kinds_resolve_their_layouts(tmp_path):
    (tmp_path / 'yolo' / 'labels').mkdir(parents=True)
    (tmp_path / 'yolo' / 'classes.names').write_text('cat\ndog\n')
    (tmp_path / 'yolo' / 'train.txt').write_text('a\n')
    (tmp_path / 'yolo' / 'labels' / 'a.txt').write_text('1 0.5 0.5 0.5 0.5\n')
    yolo = load_imdb('yolo', 'train', str(tmp_path / 'yolo'))
    assert yolo.classes == ['cat', 'dog']
    assert yolo.image_path_from_index(0) == os.path.join(str(tmp_path / 'yolo'), 'images', 'a.jpg')

    (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
    (tmp_path / 'coco' / 'val2017').mkdir()
    image = {'id': 1, 'file_name': 'x.jpg', 'width': 10, 'height': 10}
    coco_json(tmp_path / 'coco' / 'annotations' / 'instances_val2017.json',
              [{'image_id': 1, 'category_id': 90, 'bbox': [1, 1, 5, 5]}], [image])
    coco = load_imdb('coco', 'val2017', str(tmp_path / 'coco'))
    assert coco.image_path_from_index(0) == os.path.join(str(tmp_path / 'coco'), 'val2017', 'x.jpg')

    (tmp_path / 'folder' / 'Annotations').mkdir(parents=True)
    xml = voc_xml(20, 20, [('bee', 2, 2, 9, 9, 0)])
    (tmp_path / 'folder' / 'Annotations' / 'p.xml').write_text(xml)
    folder = load_imdb('voc-folder', '', str(tmp_path / 'folder'))
    assert folder.classes == ['bee']
    expected_image = os.path.join(str(tmp_path / 'folder' / 'Annotations'), 'x.jpg')
    assert folder.image_path_from_index(0) == expected_image  # no JPEGImages: beside the XML
    with pytest.raises(ValueError, match='unknown dataset'):
        load_imdb('imagenet', 'train', str(tmp_path))


def write_voc_folder(folder, stems, image_bytes):
    """VOC XMLs (no <filename>: the image is found by stem) beside `image_bytes[stem]`; paths
    as bytes, so that names need not be UTF-8."""
    os.makedirs(folder, exist_ok=True)
    for stem in stems:
        with open(os.path.join(folder, stem + b'.xml'), 'w') as f:
            f.write(voc_xml(100, 80, [('cat', 11, 11, 51, 51, 0)], filename=''))
        with open(os.path.join(folder, stem + b'.jpg'), 'wb') as f:
            f.write(image_bytes.get(stem, image_bytes[None]))


def test_empty_image_and_odd_file_names_are_skipped_or_packed_not_fatal(tmp_path):
    # a 0-byte image used to abort the run with cv2.error, a Latin-1 name with UnicodeError
    # (leaving train.lst.tmp.tmp behind); a tab in a name would break the .lst
    root = os.path.join(os.fsencode(str(tmp_path)), b'caf\xe9')
    jpeg = cv2.imencode('.jpg', np.full((80, 100, 3), 90, np.uint8))[1].tobytes()
    write_voc_folder(root, [b'good', b'latin1-\xe9', b'empty', b'tab\tname'],
                     {None: jpeg, b'empty': b''})
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, os.path.join('tools', 'prepare_dataset.py'), '--dataset', 'voc-folder',
         '--root', root, '--target', str(out / 'train.lst'), '--no-shuffle', '--no-progress',
         '--num-thread', '1'], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b'Traceback' not in proc.stderr and b'2 images, 2 objects' in proc.stdout
    assert b'image root (paths in the .lst): %s\n' % root in proc.stdout
    assert sorted(os.listdir(out)) == ['train.idx', 'train.issues.txt', 'train.lst', 'train.rec']
    with open(out / 'train.lst', 'rb') as f:
        assert [line.split(b'\t')[-1] for line in f.read().splitlines()] == [
            b'good.jpg', b'latin1-\xe9.jpg']
    with open(out / 'train.issues.txt', 'rb') as f:
        assert f.read().splitlines() == [
            root + b'/empty.jpg: unreadable or corrupt image: empty file (0 bytes) '
                   b'(image dropped)',
            root + b'/tab\tname.jpg: file name holds a tab or line break (the .lst cannot list '
                   b'it) (image dropped)']
    it = DetRecordIter(str(out / 'train.rec'), 2, 32, path_imglist=str(out / 'train.lst'),
                       num_classes=1, **cfg.valid)
    assert it.num_records == 2 and len(list(it)) == 1


def test_unreadable_image_is_reported_not_missing(tmp_path):
    record = imdb_mod.ImageRecord('x', str(tmp_path), np.zeros((0, 6), np.float32), None)
    assert prepare_mod.encode_image(record) == (
        None, (imdb_mod.CORRUPT_IMAGE, 'cannot be read: Is a directory'))


def test_failed_list_write_leaves_no_temp_files(tmp_path, monkeypatch):
    make_voc(tmp_path, 2007, GOOD_VOC)
    voc = PascalVoc('trainval', 2007, str(tmp_path))

    def disk_full(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(imdb_mod, 'imglist_line', disk_full)
    with pytest.raises(OSError, match='No space left'):
        prepare_imdb(voc, str(tmp_path / 'out' / 'train.lst'), progress=False)
    assert os.listdir(tmp_path / 'out') == []
