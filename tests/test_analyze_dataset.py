"""The dataset report (tools/analyze_dataset.py, dataset/analysis.py, dataset/anchors.py):
planted problems are all found where they are, anchor coverage equals a brute-force IoU of
every object with every anchor the network makes, figures and JSON are written, --strict
fails, anchor fitting helps a set that needs other ratios, and train.py's pre-flight stops
on bad labels."""
import json
import os
from ast import literal_eval

import cv2
import mxnet as mx
import numpy as np
import pytest

from dataset import analysis, anchors, synthetic
from dataset import imdb as imdb_mod
from dataset.imdb import packed_label, read_imglist
from symbol import symbol_factory
from tools import analyze_dataset
from train.cli import json_object

NETWORK, SHAPE = 'mobilenet_0.25', 192
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def synthetic_set(tmp_path_factory):
    return synthetic.prepare(str(tmp_path_factory.mktemp('synthetic')), num_train=60, num_val=4,
                             seed=3, data_shape=SHAPE, progress=False)


def run_tool(tmp_path, *argv):
    """(exit code, report.json) of the tool run in-process on `argv`."""
    out = str(tmp_path / 'analysis')
    code = analyze_dataset.main(list(argv) + ['--output-dir', out, '--no-progress'])
    path = os.path.join(out, 'report.json')
    report = None
    if os.path.exists(path):
        with open(path) as f:
            report = json.load(f)
    return code, report


# ----------------------------------------------------------------------------- oracle

def network_anchors(network, data_shape, **overrides):
    """Every anchor of the built test network, by running its own multibox_anchors node."""
    height, width = data_shape
    net = symbol_factory.get_symbol(network, data_shape, num_classes=4, **overrides)
    node = net.get_internals()['multibox_anchors_output']
    executor = node.simple_bind(mx.cpu(), data=(1, 3, height, width), grad_req='null')
    return executor.forward()[0].asnumpy()[0].astype(np.float64)


def brute_force_best_iou(boxes, all_anchors):
    """Plain IoU of every box with every anchor: (best IoU, best anchor index) per box."""
    b, a = boxes[:, None, :], all_anchors[None, :, :]
    inter = (np.maximum(0, np.minimum(b[..., 2], a[..., 2]) - np.maximum(b[..., 0], a[..., 0]))
             * np.maximum(0, np.minimum(b[..., 3], a[..., 3]) - np.maximum(b[..., 1], a[..., 1])))
    union = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
             + (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) - inter)
    iou = inter / union
    return iou.max(axis=1), iou.argmax(axis=1)


def random_boxes(count, seed=0, log_side=(np.log(0.03), np.log(0.9)), log_aspect=(-1.2, 1.2)):
    rng = np.random.RandomState(seed)
    side = np.exp(rng.uniform(*log_side, count))
    aspect = np.exp(rng.uniform(*log_aspect, count))
    w, h = np.minimum(side * np.sqrt(aspect), 1), np.minimum(side / np.sqrt(aspect), 1)
    cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def write_lst(path, rows_per_image, image_names=None):
    """A detection .lst: one line per image from its (n, 6) rows (a padding row if none)."""
    with open(path, 'w') as f:
        for k, rows in enumerate(rows_per_image):
            name = image_names[k] if image_names else 'img_%d.jpg' % k
            values = ['2', '6'] + ['%.6g' % v for row in (rows or [[-1] * 6]) for v in row]
            f.write('\t'.join([str(k)] + values + [name]) + '\n')


# ----------------------------------------------------------------------------- synthetic set

def test_synthetic_report_counts_what_the_lst_holds_and_writes_figures(synthetic_set, tmp_path):
    code, report = run_tool(tmp_path, '--rec', synthetic_set['train_rec'], '--class-names',
                            'synthetic', '--network', NETWORK, '--data-shape', str(SHAPE))
    assert code == 0
    entries = read_imglist(synthetic_set['train_lst'])
    labels = [label for _, label, _ in entries]
    assert report['images'] == len(entries) == 60
    classes = np.concatenate([label[:, 0] for label in labels]).astype(int)
    assert report['objects_per_class'] == {
        name: int((classes == k).sum()) for k, name in enumerate(synthetic.CLASSES)
        if (classes == k).any()}
    assert report['images_without_objects'] == sum(len(label) == 0 for label in labels)
    assert report['max_objects_per_image'] == max(len(label) for label in labels)
    assert report['label_width'] == synthetic_set['label_width']
    assert report['problems'] == []
    # images are about 192 px (+-10%): the record's decoded sizes give the original pixels
    widths = np.concatenate([(label[:, 3] - label[:, 1]) for label in labels])
    assert report['boxes']['width_px']['p50'] == pytest.approx(np.median(widths) * SHAPE,
                                                               rel=1e-4)
    assert report['boxes']['width_image_px']['count'] == len(widths)
    out = tmp_path / 'analysis'
    for figure in ('boxes.png', 'coverage.png', 'classes.png'):
        with open(str(out / figure), 'rb') as f:
            assert f.read(8) == PNG_SIGNATURE, figure
    coverage = report['anchors']['coverage']
    assert coverage['objects'] == len(widths)
    assert sum(layer['best_anchor_for'] for layer in coverage['by_layer']) == len(widths)


def test_the_dataset_reader_and_the_rec_give_the_same_report(synthetic_set, tmp_path):
    _, from_rec = run_tool(tmp_path / 'rec', '--rec', synthetic_set['train_rec'],
                           '--class-names', 'synthetic', '--no-figures')
    _, from_reader = run_tool(tmp_path / 'voc', '--dataset', 'synthetic', '--root',
                              synthetic_set['root'], '--set', 'train', '--no-figures')
    for key in ('images', 'objects', 'objects_per_class', 'images_without_objects',
                'objects_per_image', 'label_width'):
        assert from_rec[key] == from_reader[key], key


@pytest.mark.parametrize('data_shape, overrides', [
    ((SHAPE, SHAPE), {}),
    ((160, 224), {}),                 # non-square input: anchors laid out on 160x224 maps
    ((SHAPE, SHAPE), {'clip': True}),  # clipped anchors take the brute-force path
])
def test_coverage_equals_brute_force_iou_with_every_network_anchor(synthetic_set, data_shape,
                                                                    overrides):
    entries, _ = analysis.entries_from_rec(synthetic_set['train_rec'], read_sizes=False)
    classes, boxes, _ = analysis.usable_objects(entries)
    classes = np.concatenate([classes, np.arange(300) % 4])
    boxes = np.concatenate([boxes, random_boxes(300)])   # all sizes and aspects
    _, layers = anchors.anchor_layers(NETWORK, data_shape, **overrides)
    all_anchors = network_anchors(NETWORK, data_shape, **overrides)
    assert len(all_anchors) == sum(len(anchors.prior_boxes(layer)) for layer in layers)

    expected_best, expected_index = brute_force_best_iou(boxes, all_anchors)
    per_layer = anchors.best_iou_per_layer(boxes, layers)
    np.testing.assert_allclose(per_layer.max(axis=1), expected_best, atol=1e-6)

    report = anchors.coverage_report(classes, boxes, layers, data_shape, synthetic.CLASSES)
    uncovered = expected_best <= 0.5
    assert report['objects'] == len(boxes)
    assert report['without_positive'] == uncovered.sum() > 0
    assert report['mean_best_iou'] == pytest.approx(expected_best.mean(), abs=1e-6)
    for k, name in enumerate(synthetic.CLASSES):
        assert report['by_class'][name]['without_positive'] == uncovered[classes == k].sum()
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * data_shape[1]
                   * (boxes[:, 3] - boxes[:, 1]) * data_shape[0])
    # the layer holding each object's best anchor, from the anchor's position in the network
    layer_ends = np.cumsum([len(anchors.prior_boxes(layer)) for layer in layers])
    expected_layer = np.searchsorted(layer_ends, expected_index, side='right')
    for name, (low, high) in zip(anchors.size_bucket_names(),
                                 zip(anchors.SIZE_BUCKETS[:-1], anchors.SIZE_BUCKETS[1:])):
        in_bucket = (side >= low) & (side < high)
        assert report['by_size'][name]['objects'] == in_bucket.sum(), name
        assert report['by_size'][name]['without_positive'] == (uncovered & in_bucket).sum(), name
        layer_counts = np.bincount(expected_layer[in_bucket], minlength=len(layers))
        assert report['by_size'][name]['best_anchor_on'] == {
            layer.name: n for layer, n in zip(layers, layer_counts) if n}, name
    assert [layer['best_anchor_for'] for layer in report['by_layer']] == \
        np.bincount(expected_layer, minlength=len(layers)).tolist()


@pytest.mark.parametrize('network, data_shape', [
    ('vgg16_reduced', (300, 300)),          # pixel steps at its native size
    ('legacy_vgg16_ssd_512', (512, 512)),   # explicit sizes, 4x4 last extra layer
    ('resnet50', (256, 320)),
])
def test_anchor_layers_are_the_networks_multibox_prior_nodes(network, data_shape):
    _, layers = anchors.anchor_layers(network, data_shape)
    net = symbol_factory.get_symbol(network, data_shape, num_classes=3)
    attrs, internals = net.attr_dict(), net.get_internals()
    priors = [name[:-len('_anchors_output')] for name in internals.list_outputs()
              if name.endswith('_anchors_output') and 'sizes' in attrs[name[:-len('_output')]]]
    assert [layer.name for layer in layers] == priors
    for layer in layers:
        node = attrs[layer.name + '_anchors']
        assert np.allclose(literal_eval(node['sizes']), layer.sizes), layer.name
        assert np.allclose(literal_eval(node['ratios']), layer.ratios), layer.name
        assert np.allclose(literal_eval(node['steps']), layer.step), layer.name
        assert node['clip'] == str(layer.clip)
        _, (shape,), _ = internals[layer.name + '_anchors_output'].infer_shape(
            data=(1, 3) + data_shape)
        assert shape == (1,) + anchors.prior_boxes(layer).shape, layer.name


# ----------------------------------------------------------------------------- planted problems

def voc_xml_lines(filename, width, height, objects):
    """A VOC annotation written one element per line (line numbers are then meaningful)."""
    lines = ['<annotation>', '  <filename>%s</filename>' % filename, '  <size>',
             '    <width>%d</width>' % width, '    <height>%d</height>' % height, '  </size>']
    for name, x1, y1, x2, y2 in objects:
        lines += ['  <object>', '    <name>%s</name>' % name, '    <difficult>0</difficult>',
                  '    <bndbox>', '      <xmin>%s</xmin>' % x1, '      <ymin>%s</ymin>' % y1,
                  '      <xmax>%s</xmax>' % x2, '      <ymax>%s</ymax>' % y2, '    </bndbox>',
                  '  </object>']
    return '\n'.join(lines + ['</annotation>']) + '\n'


OBJECT_LINES = 10   # lines per <object> in voc_xml_lines; the first starts at line 7
PLANTED_VOC = {
    'good': (200, 100, [('cat', 11, 11, 101, 51), ('dog', 51, 21, 151, 81)]),
    'flipped': (200, 100, [('cat', 11, 11, 101, 51), ('dog', 151, 21, 51, 81)]),
    'outside': (200, 100, [('dog', 11, 11, 381, 51)]),
    'unknown': (200, 100, [('cat', 11, 11, 101, 51), ('zebra', 11, 11, 51, 51)]),
    'tiny': (1000, 1000, [('cat', 101, 101, 111, 103)]),   # 10 x 2 px: 3 x 0.6 px at 300
    'bird': (200, 100, [('bird', 11, 11, 101, 51)]),        # class id 2, --num-class 2
    'empty': (200, 100, []),
}


def make_planted_voc(folder):
    os.makedirs(folder)
    for stem, (width, height, objects) in PLANTED_VOC.items():
        with open(os.path.join(folder, stem + '.xml'), 'w') as f:
            f.write(voc_xml_lines(stem + '.jpg', width, height, objects))
    return folder


def test_every_planted_problem_of_a_voc_tree_is_found_with_its_file_and_line(tmp_path):
    folder = make_planted_voc(str(tmp_path / 'xml'))
    argv = ['--dataset', 'voc-folder', '--root', folder, '--class-names', 'cat,dog,bird',
            '--num-class', '2', '--data-shape', '300']
    code, report = run_tool(tmp_path, *argv)
    assert code == 0
    xml = lambda stem: os.path.join(folder, stem + '.xml')  # noqa: E731
    found = {(p['kind'], p['where']) for p in report['problems']}
    assert found == {
        (imdb_mod.EMPTY_BOX, '%s:%d' % (xml('flipped'), 7 + OBJECT_LINES)),   # 2nd object
        (imdb_mod.BOX_OUTSIDE, '%s:7' % xml('outside')),
        (imdb_mod.UNKNOWN_CLASS, '%s:%d' % (xml('unknown'), 8 + OBJECT_LINES)),  # its <name>
        (analysis.TINY_BOX, 'tiny'),                  # the reader's image id
        (analysis.CLASS_OUT_OF_RANGE, 'bird'),
    }
    by_kind = {p['kind']: p for p in report['problems']}
    assert by_kind[analysis.TINY_BOX]['detail'] == 'object 0 is 3.0 x 0.6 px at the 300x300 input'
    assert 'class id 2' in by_kind[analysis.CLASS_OUT_OF_RANGE]['detail']
    assert by_kind[imdb_mod.EMPTY_BOX]['image'] == 'flipped'
    assert by_kind[analysis.TINY_BOX]['image'] == os.path.join(folder, 'tiny.jpg')
    assert report['images'] == len(PLANTED_VOC)
    assert report['images_without_objects'] == 2     # 'empty', and 'outside' keeps none
    assert report['objects_per_class'] == {'cat': 4, 'dog': 1, 'bird': 1}
    assert report['max_objects_per_image'] == 2 and report['label_width'] == 14

    strict_code, _ = run_tool(tmp_path / 'strict', *argv, '--strict')
    assert strict_code == analyze_dataset.STRICT_EXIT_CODE


def test_every_planted_problem_of_a_lst_is_found_on_its_line(tmp_path, capsys):
    lst = str(tmp_path / 'planted.lst')
    write_lst(lst, [
        [[0, 0.1, 0.1, 0.5, 0.5, 0]],                                   # 1: fine
        [[0, 0.1, 0.1, 0.5, 0.5, 0], [5, 0.2, 0.2, 0.6, 0.6, 0]],        # 2: class 5 of 3
        [[1, 0.6, 0.1, 0.2, 0.5, 0]],                                   # 3: xmin > xmax
        [[2, 0.1, 0.1, 1.5, 0.5, 0]],                                   # 4: outside
        [[2, 0.1, 0.1, 0.105, 0.5, 0]],                                 # 5: 1.5 px wide
        [],                                                             # 6: no objects
        [[1.5, 0.1, 0.1, 0.5, 0.5, 0]],                                 # 7: class 1.5
    ])
    with open(lst, 'a') as f:
        f.write('7\t2\t6\t0\tabc\t0.1\t0.5\t0.5\t0\timg_7.jpg\n')       # 8: not a number
        f.write('8\t2\t6\tnan\t0.1\t0.1\t0.5\t0.5\t0\timg_8.jpg\n')     # 9: class NaN
    code, report = run_tool(tmp_path, '--lst', lst, '--num-class', '3', '--no-image-sizes',
                            '--strict')
    assert code == analyze_dataset.STRICT_EXIT_CODE
    found = sorted((p['where'], p['kind'], p['image']) for p in report['problems'])
    assert found == sorted([
        ('%s:2' % lst, analysis.CLASS_OUT_OF_RANGE, 'img_1.jpg'),
        ('%s:3' % lst, analysis.DEGENERATE_BOX, 'img_2.jpg'),
        ('%s:4' % lst, analysis.OUT_OF_RANGE_BOX, 'img_3.jpg'),
        ('%s:5' % lst, analysis.TINY_BOX, 'img_4.jpg'),
        ('%s:7' % lst, analysis.CLASS_OUT_OF_RANGE, 'img_6.jpg'),
        ('%s:8' % lst, analysis.MALFORMED_LABEL, 'img_7.jpg'),
        ('%s:9' % lst, analysis.CLASS_OUT_OF_RANGE, 'img_8.jpg'),
    ])
    assert report['images'] == 8 and report['images_without_objects'] == 1
    assert report['objects'] == 8 and report['usable_objects'] == 5
    assert report['max_objects_per_image'] == 2 and report['label_width'] == 14
    printed = capsys.readouterr().out
    assert '%s:2: %s: object 1 has class id 5, --num-class 3 allows 0..2 (image img_1.jpg)' \
        % (lst, analysis.CLASS_OUT_OF_RANGE) in printed


def test_bad_arguments_give_one_error_line(tmp_path, capsys):
    code, _ = run_tool(tmp_path, '--lst', str(tmp_path / 'missing.lst'))
    assert code == 2
    assert capsys.readouterr().err.strip() == 'error: --lst %s: file not found' \
        % (tmp_path / 'missing.lst')
    lst = str(tmp_path / 'one.lst')
    write_lst(lst, [[[0, 0.1, 0.1, 0.5, 0.5, 0]]])
    code, _ = run_tool(tmp_path, '--lst', lst, '--network', NETWORK, '--preset-overrides',
                       '{"sizez": [0.1]}')
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'sizez' in err[0], err
    garbage = tmp_path / 'garbage.rec'
    garbage.write_bytes(b'not a record file' * 100)
    code, _ = run_tool(tmp_path, '--rec', str(garbage))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith('error: %s: not a readable RecordIO file (' % garbage), err
    assert err[0].endswith('Invalid RecordIO File)'), err


def test_height_width_input_shapes_size_the_boxes_in_that_order(tmp_path):
    lst = str(tmp_path / 'shapes.lst')
    write_lst(lst, [[[0, 0.1, 0.1, 0.115, 0.6, 0]],     # 3.4 px wide at 224: tiny
                    [[0, 0.1, 0.1, 0.6, 0.12, 0]],      # 3.2 px high at 160: tiny
                    [[0, 0.1, 0.1, 0.12, 0.13, 0]]])    # 4.5 x 4.8 px: not tiny
    code, report = run_tool(tmp_path, '--lst', lst, '--no-image-sizes', '--data-shape',
                            '160,224', '--network', NETWORK, '--no-figures')
    assert code == 0 and report['data_shape'] == [160, 224]
    assert [p['where'] for p in report['problems']] == ['%s:1' % lst, '%s:2' % lst]
    assert report['boxes']['height_px']['p0'] == pytest.approx(0.02 * 160)
    coverage = report['anchors']['coverage']
    assert coverage['objects'] == 3 and coverage['by_layer'][0]['grid'] == [20, 28]


# ----------------------------------------------------------------------------- anchor fitting

def test_fitting_covers_a_set_that_needs_other_ratios(tmp_path):
    # long thin objects (aspect 6 and 1/6) of 20-50% of the image: the preset's ratios go to 3
    rows = []
    for k, box in enumerate(random_boxes(400, seed=5, log_side=(np.log(0.2), np.log(0.5)),
                                         log_aspect=(np.log(6), np.log(6)))):
        if k % 2:   # transpose half of them: tall ones
            box = np.array([box[1], box[0], box[3], box[2]])
        rows.append([[k % 3] + box.tolist() + [0]])
    lst = str(tmp_path / 'thin.lst')
    write_lst(lst, rows)
    code, report = run_tool(tmp_path, '--lst', lst, '--num-class', '3', '--no-image-sizes',
                            '--network', NETWORK, '--data-shape', str(SHAPE), '--fit-anchors')
    assert code == 0
    before, after = report['anchors']['coverage'], report['anchors']['fitted_coverage']
    assert before['without_positive_fraction'] > 0.3
    assert after['without_positive_fraction'] < before['without_positive_fraction'] / 2
    assert after['mean_best_iou'] > before['mean_best_iou']
    assert after['anchors'] == before['anchors']          # same anchors per cell
    with open(str(tmp_path / 'analysis' / 'fitted_anchors.json')) as f:
        overrides = json_object(f.read())                  # what train.py parses
    assert overrides == report['anchors']['fitted_overrides']
    assert max(max(r) for r in overrides['ratios']) > 4   # it found the thin shapes

    def parameter_shapes(**fields):
        net = symbol_factory.get_symbol_train(NETWORK, SHAPE, num_classes=3, **fields)
        shapes, _, _ = net.infer_shape(data=(1, 3, SHAPE, SHAPE), label=(1, 1, 6))
        return dict(zip(net.list_arguments(), shapes))
    assert parameter_shapes(**overrides) == parameter_shapes()   # checkpoints still load
    # the written coverage is the real one of the fitted network's anchors
    boxes = np.array([r[0][1:5] for r in rows])
    best, _ = brute_force_best_iou(boxes, network_anchors(NETWORK, (SHAPE, SHAPE), **overrides))
    assert after['without_positive'] == (best <= 0.5).sum()

    # asked for, it adds ratios: two more anchors in every cell of every layer
    _, more = run_tool(tmp_path / 'more', '--lst', lst, '--num-class', '3', '--no-image-sizes',
                       '--network', NETWORK, '--data-shape', str(SHAPE), '--fit-anchors',
                       '--fit-extra-ratios', '2', '--no-figures')
    cells = sum(rows * cols for rows, cols in (layer['grid'] for layer in before['by_layer']))
    assert more['anchors']['fitted_coverage']['anchors'] == before['anchors'] + 2 * cells
    assert [len(r) for r in more['anchors']['fitted_overrides']['ratios']] == \
        [len(r) + 2 for r in report['anchors']['fitted_overrides']['ratios']]


# ----------------------------------------------------------------------------- train.py pre-flight

def write_rec(path, labels):
    image = cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    writer = mx.recordio.MXRecordIO(path, 'w')
    for k, label in enumerate(labels):
        rows = np.array(label, np.float32).reshape(-1, 6)
        writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, packed_label(rows), k, 0), image))
    writer.close()
    return path


def test_preflight_passes_good_labels_and_stops_on_bad_ones(tmp_path):
    good = [[[0, 0.1, 0.1, 0.5, 0.5, 0]], [[1, 0.2, 0.2, 0.4, 0.9, 0], [0, .1, .1, .2, .2, 0]],
            []]
    analysis.preflight_check(write_rec(str(tmp_path / 'good.rec'), good), num_class=2,
                             label_width=14)

    bad = write_rec(str(tmp_path / 'bad.rec'), good + [[[4, 0.1, 0.1, 0.5, 0.5, 0]],
                                                       [[1, 0.5, 0.1, 0.5, 0.5, 0]]])
    with pytest.raises(analysis.DatasetError) as err:
        analysis.preflight_check(bad, num_class=2)
    message = str(err.value)
    assert '%s record 3: %s: object 0 has class id 4, --num-class 2 allows 0..1 (image id 3)' \
        % (bad, analysis.CLASS_OUT_OF_RANGE) in message
    assert '%s record 4: %s' % (bad, analysis.DEGENERATE_BOX) in message
    assert 'problems: 2' in message

    with pytest.raises(analysis.DatasetError) as err:
        analysis.preflight_check(str(tmp_path / 'good.rec'), num_class=2, label_width=8)
    assert '2 objects need a label width of 14, --label-width is 8' in str(err.value)
    assert 'label width needed: 14' in str(err.value)
