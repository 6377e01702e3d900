"""Non-square inputs (--data-shape HEIGHT,WIDTH) end to end: names and specs of non-square
models, anchors laid out on non-square feature maps (checked against numpy), the square shipped
model run at a non-square size, a short non-square training run, and the command line a new
user types (synthetic data at 300x500, train, evaluate, demo, deploy to MXNet and ONNX)."""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.cli import data_shape as parse_data_shape
from dataset import synthetic
from dataset.anchors import box_iou
from symbol import model_io
from symbol.common import feature_shape, multi_layer_feature
from symbol.symbol_builder import build_backbone, multibox_predictions
from symbol.symbol_factory import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = 'mobilenet_0.25'
CLASSES = list(synthetic.CLASSES)


def run_script(script, *args):
    """Run a script of this checkout (tools/ scripts import the project: PYTHONPATH says which
    copy)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS='2', PYTHONPATH=ROOT))


def matched_share(detections, objects, min_iou=0.5):
    """Share of ground-truth objects [(name, xmin, ymin, xmax, ymax) in pixels] that a detection
    of their class ([(class id, score, xmin, ymin, xmax, ymax)] in pixels) overlaps with IoU >=
    min_iou (each detection used once)."""
    found = total = 0
    for dets, objs in zip(detections, objects):
        unused = np.ones(len(dets), bool)
        for name, *box in objs:
            total += 1
            candidates = np.flatnonzero(unused & (dets[:, 0] == CLASSES.index(name))) \
                if len(dets) else []
            if not len(candidates):
                continue
            ious = box_iou(np.array(box, float)[None], dets[candidates, 2:6].astype(float))
            if ious.max() >= min_iou:
                unused[candidates[ious.argmax()]] = False
                found += 1
    return found / float(total)


# ------------------------------------------------------------------------- names and specs

@pytest.mark.parametrize('shape, tag', [((300, 500), '300x500'), ((500, 300), '500x300'),
                                        (300, '300'), ((300, 300), '300'), (224, '224')])
def test_shape_names_round_trip(shape, tag):
    """train.py names a run 'ssd_<network>_<H>x<W>' (square sizes keep the original's
    'ssd_<network>_<size>', so released models load), and the tag reads back as --data-shape."""
    assert model_io.shape_tag(shape) == tag
    assert model_io.expand_prefix('out/ssd_', NETWORK, shape) == 'out/ssd_%s_%s' % (NETWORK, tag)
    assert parse_data_shape(tag) == model_io.shape_value(shape)
    assert parse_data_shape(tag.replace('x', ',')) == model_io.shape_value(shape)


def test_shape_values():
    assert model_io.shape_value((300, 500)) == (300, 500)
    assert model_io.shape_value((3, 300, 500)) == (300, 500)
    assert model_io.shape_value([300, 300]) == 300 and model_io.shape_value(224) == 224
    assert parse_data_shape('300x500') == (300, 500)
    with pytest.raises(Exception, match='HEIGHT,WIDTH'):
        parse_data_shape('300,500,3')


def test_a_non_square_spec_round_trips(tmp_path):
    prefix = str(tmp_path / ('ssd_%s_300x500' % NETWORK))
    model_io.write_spec(prefix, model_io.make_spec(NETWORK, (300, 500), 4, CLASSES))
    with open(model_io.spec_path(prefix)) as f:
        assert json.load(f)['data_shape'] == [300, 500]    # (height, width)
    spec = model_io.read_spec(prefix)
    settings = model_io.resolve_settings(spec, {}, model_io.spec_path(prefix))
    assert settings['data_shape'] == (300, 500)
    # the prefix of a command line finds it again by network and shape
    assert model_io.find_model(str(tmp_path / 'ssd_'), NETWORK, (300, 500)) == prefix
    found, _, opened = model_io.open_model(str(tmp_path / 'ssd_'), dict(network=NETWORK,
                                           data_shape=(300, 500)), {})
    assert (found, opened['data_shape']) == (prefix, (300, 500))


def test_a_size_flag_on_a_name_prefix_falls_back_to_the_trained_size(tmp_path):
    """'ssd_' + --data-shape 224,320 names the model trained at 224x320 when there is one,
    else the one at the script's default size (224), which then runs at 224x320."""
    folder = str(tmp_path / 'ssd_')
    square, wide = folder + NETWORK + '_224', folder + NETWORK + '_224x320'
    assert model_io.find_model(folder, NETWORK, (224, 320), 224) == wide   # nothing there yet
    model_io.write_spec(square, model_io.make_spec(NETWORK, 224, 4, CLASSES))
    assert model_io.find_model(folder, NETWORK, (224, 320), 224) == square
    assert model_io.find_model(folder, NETWORK, (224, 320)) == wide        # no default size
    model_io.write_spec(wide, model_io.make_spec(NETWORK, (224, 320), 4, CLASSES))
    assert model_io.find_model(folder, NETWORK, (224, 320), 224) == wide


# --------------------------------------------------------------------------- anchor layout

def numpy_priors(rows, cols, sizes, ratios, offset=0.5):
    """MultiBoxPrior's definition with automatic steps: one cell per feature-map position,
    centres ((col + offset) / cols, (row + offset) / rows); a size s gives half extents
    (s * rows / cols / 2, s / 2) and ratio r (r > first) (s0 * rows / cols * sqrt(r) / 2,
    s0 / sqrt(r) / 2): widths are relative to the map's width, heights to its height, so on an
    image with the map's aspect the anchors are square in pixels."""
    half = [(s * rows / cols / 2, s / 2) for s in sizes]
    half += [(sizes[0] * rows / cols * np.sqrt(r) / 2, sizes[0] / np.sqrt(r) / 2)
             for r in ratios[1:]]
    boxes = []
    for row in range(rows):
        for col in range(cols):
            cx, cy = (col + offset) / cols, (row + offset) / rows
            boxes.extend([cx - hw, cy - hh, cx + hw, cy + hh] for hw, hh in half)
    return np.array(boxes)


def test_anchors_on_a_300x500_input_follow_multibox_prior():
    config = get_config(NETWORK, (300, 500))
    features = multi_layer_feature(build_backbone(config), config['data_shape'],
                                   config['from_layers'], config['num_filters'],
                                   config['strides'], config['pads'], kernels=config['kernels'],
                                   min_filter=config['min_filter'], naming=config['naming'])
    grids = [tuple(feature_shape(f, (300, 500))[1:]) for _, f in features]
    # backbone strides 8, 16, 32 (sides rounded up), then two stride-2 3x3 extra layers: each
    # map keeps about the input's 3:5 aspect
    assert grids == [(38, 63), (19, 32), (10, 16), (5, 8), (3, 4)]
    expected = np.concatenate([numpy_priors(rows, cols, sizes, ratios) for (rows, cols), sizes,
                               ratios in zip(grids, config['sizes'], config['ratios'])])
    _, _, anchors = multibox_predictions(config, 4)
    executor = anchors.simple_bind(mx.cpu(), data=(1, 3, 300, 500), grad_req='null')
    actual = executor.forward(is_train=False)[0].asnumpy()[0]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-6)
    # ratio-1 anchors of the 38x63 map are square in pixels up to the map's rounding
    per_cell = len(config['sizes'][0]) + len(config['ratios'][0]) - 1
    first = actual[:38 * 63 * per_cell:per_cell]
    width_px, height_px = (first[:, 2] - first[:, 0]) * 500, (first[:, 3] - first[:, 1]) * 300
    np.testing.assert_allclose(width_px / height_px, (38 / 63.) / (300 / 500.), rtol=1e-5)


# --------------------------------------------------------------- square model, other shape

def test_the_square_shipped_model_finds_objects_at_a_non_square_size(shipped_model, tmp_path):
    """demo.py --data-shape 224,320 on the 224x224 shipped model: boxes (pixels of the original
    images, via --json) land on the objects of 300x420 images it has never seen."""
    from conftest import write_synthetic_images
    paths, objects = write_synthetic_images(tmp_path, 12, side=(300, 420))
    out = tmp_path / 'detections.json'
    proc = run_script('demo.py', '--images', ','.join(paths), '--data-shape', '224,320',
                      '--json', out, '--save-dir', tmp_path / 'annotated', '--cpu', '--thresh', 0.4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out) as f:
        report = json.load(f)
    assert report['model']['data_shape'] == [224, 320]
    detections = [np.array([[d['class_id'], d['score']] + d['box'] for d in r['detections']])
                  for r in report['results']]
    assert [(r['width'], r['height']) for r in report['results']] == \
        [cv2.imread(path).shape[1::-1] for path in paths]
    share = matched_share(detections, objects)
    # measured: all 30 objects (28 at 224x224); with x and y scaled by each other's side: none
    assert share >= 0.7, share



# ------------------------------------------------------------------ non-square training

LEARN_SHAPE, LEARN_TRAIN, LEARN_VAL, LEARN_EPOCHS = (128, 224), 256, 64, 4


def test_synthetic_images_follow_a_non_square_shape():
    image, _ = synthetic.render_image(3, 'val', 0, (120, 200))
    jitter = synthetic.SETTINGS['image_side_jitter']
    assert 120 * (1 - jitter) <= image.shape[0] <= 120 * (1 + jitter)
    assert 200 * (1 - jitter) <= image.shape[1] <= 200 * (1 + jitter)
    # (H, H) is the square size H: the same image, so square datasets are unchanged
    assert (synthetic.render_image(3, 'val', 0, (150, 150))[0]
            == synthetic.render_image(3, 'val', 0, 150)[0]).all()


def test_a_non_square_training_run_learns(shipped_model, random_model, tmp_path):
    """Heads trained from scratch at 128x224 (on the shipped model's backbone, so that a few
    epochs suffice) on held-out images: both losses fall and the validation mAP ends far above
    an untrained model's at the same size.  Measured (2-core machine, loaded): CrossEntropy
    1.82 -> 0.86, SmoothL1 0.77 -> 0.44, mAP 0.14, 0.34, 0.51, 0.56 (untrained: ~0.00)."""
    from evaluate.evaluate_net import evaluate_net
    from train.options import TrainOptions
    from train.train_net import train_net
    data = synthetic.prepare(str(tmp_path / 'data'), num_train=LEARN_TRAIN, num_val=LEARN_VAL,
                             seed=11, data_shape=LEARN_SHAPE, progress=False)
    arg_params, aux_params = model_io.load_params(shipped_model, model_io.saved_epochs(
        shipped_model)[-1])
    backbone = str(tmp_path / 'backbone')
    model_io.save_params_file(model_io.params_path(backbone, 1), {
        name: value for name, value in arg_params.items() if '_pred_conv_' not in name},
        aux_params)
    summary = train_net(TrainOptions(
        network=NETWORK, train_path=data['train_rec'], val_path=data['val_rec'], num_class=4,
        class_names='synthetic', data_shape=LEARN_SHAPE, batch_size=16,
        label_width=data['label_width'], pretrained=backbone, epoch=1, cpu=True,
        optimizer='adam', lr=0.002, lr_steps=(), prefix=str(tmp_path / 'ssd_'),
        checkpoint_period=LEARN_EPOCHS, frequent=1000, end_epoch=LEARN_EPOCHS, seed=7, log=''))
    assert summary['prefix'].endswith('ssd_%s_128x224' % NETWORK)
    epochs = summary['epochs']
    first, last = epochs[0], epochs[-1]
    assert last['CrossEntropy'] < 0.6 * first['CrossEntropy']
    assert last['SmoothL1'] < 0.75 * first['SmoothL1']
    untrained = evaluate_net(NETWORK, data['val_rec'], 4, random_model.mean, LEARN_SHAPE,
                             random_model.save(tmp_path), random_model.epoch)['summary']['mAP']
    assert last['mAP'] > 0.3 and last['mAP'] > untrained + 0.25, \
        ([round(e['mAP'], 3) for e in epochs], untrained)
    assert model_io.read_spec(summary['prefix'])['data_shape'] == [128, 224]


# ------------------------------------------------------------------ the user's command line

def check_run(script, *args):
    proc = run_script(script, *args)
    assert proc.returncode == 0, '%s failed:\n%s%s' % (script, proc.stdout, proc.stderr)
    return proc


def test_a_300x500_run_from_the_command_line(tmp_path):
    """The README's non-square commands: synthetic data at 300,500, train.py --data-shape
    300,500, then evaluate.py, demo.py --json, deploy.py (MXNet and ONNX) and tools/quantize.py
    with only --prefix and --epoch: each reads the 300x500 shape from the model spec."""
    root = tmp_path / 'synthetic'
    for split, order in (('train', '--shuffle'), ('val', '--no-shuffle')):
        check_run('tools/prepare_dataset.py', '--dataset', 'synthetic', '--set', split,
                  '--root', root, '--target', root / (split + '.lst'), order, '--num-train', 32,
                  '--num-val', 8, '--data-shape', '300,500', '--no-progress')
    image = root / 'JPEGImages' / 'val_000000.jpg'
    height, width = cv2.imread(str(image)).shape[:2]
    assert 270 <= height <= 330 and 450 <= width <= 550
    check_run('train.py', '--network', NETWORK, '--data-shape', '300,500', '--train-path',
              root / 'train.rec', '--val-path', root / 'val.rec', '--num-class', 4,
              '--class-names', 'synthetic', '--batch-size', 16, '--end-epoch', 1, '--cpu',
              '--prefix', tmp_path / 'out' / 'ssd_')
    prefix = tmp_path / 'out' / ('ssd_%s_300x500' % NETWORK)
    assert model_io.read_spec(str(prefix))['data_shape'] == [300, 500]

    check_run('evaluate.py', '--rec-path', root / 'val.rec', '--prefix', prefix, '--epoch', 1,
              '--output-dir', tmp_path / 'eval', '--cpu')
    with open(tmp_path / 'eval' / 'results.json') as f:
        assert json.load(f)['model']['data_shape'] == [300, 500]

    check_run('demo.py', '--prefix', prefix, '--epoch', 1, '--images', image, '--json',
              tmp_path / 'demo.json', '--save-dir', tmp_path / 'demo', '--cpu', '--thresh', 0)
    with open(tmp_path / 'demo.json') as f:
        report = json.load(f)
    assert report['model']['data_shape'] == [300, 500]
    assert (report['results'][0]['width'], report['results'][0]['height']) == (width, height)
    boxes = np.array([d['box'] for d in report['results'][0]['detections']])
    assert len(boxes) and boxes[:, [0, 2]].max() > height   # x spans the wider side
    assert cv2.imread(str(tmp_path / 'demo' / image.name)).shape[:2] == (height, width)

    check_run('deploy.py', '--prefix', prefix, '--epoch', 1)
    deployed = model_io.deploy_prefix(str(prefix))
    assert model_io.read_spec(deployed)['data_shape'] == [300, 500]
    check_run('demo.py', '--deploy', '--prefix', deployed, '--epoch', 1, '--images', image,
              '--save-dir', tmp_path / 'demo_deploy', '--cpu')

    out = check_run('tools/quantize.py', '--prefix', prefix, '--epoch', 1, '--calib-rec',
                    root / 'train.rec', '--eval-rec', root / 'val.rec', '--num-calib-images', 8,
                    '--batch-size', 4).stdout
    assert 'int8 / fp32 speed' in out
    assert model_io.read_spec(str(prefix) + '_int8')['data_shape'] == [300, 500]

    if importlib.util.find_spec('onnx') is None:    # optional dependency
        return
    import onnx
    check_run('deploy.py', '--format', 'onnx', '--prefix', prefix, '--epoch', 1)
    graph = onnx.load(model_io.onnx_path(deployed)).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1:] == [3, 300, 500]
    if importlib.util.find_spec('onnxruntime') is not None:
        check_run('demo.py', '--runtime', 'onnxruntime', '--prefix', model_io.onnx_path(deployed),
                  '--images', image, '--save-dir', tmp_path / 'demo_onnx')
