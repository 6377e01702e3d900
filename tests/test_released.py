"""Released mxnet-ssd models: the table, and demo's step to one unpacked into model/ under its
release file names (checkpoints with random weights of the released names and shapes)."""
import argparse
import os

import mxnet as mx
import numpy as np
import pytest

from dataset.imdb import load_class_names
from detect import released
from detect.detector import get_detector
from detect.shipped import SHIPPED_MODEL, SHIPPED_NOTICE, shipped_model_notice, shipped_prefix

VOC_CLASSES = load_class_names('pascal_voc')


def write_release_files(model, model_dir, in_archive_folder=False, weights=True):
    """``<file_prefix>-symbol.json`` and ``-<epoch>.params`` as the archive has them: every
    parameter of the model's test graph under its name and shape (random values; batch-norm
    statistics valid), or empty files when only the names matter."""
    from symbol.symbol_factory import get_symbol
    folder = str(model_dir)
    if in_archive_folder:
        folder = os.path.join(folder, os.path.splitext(model.archive)[0])
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, model.file_prefix)
    params_file = '%s-%04d.params' % (prefix, model.epoch)
    if not weights:
        for path in (prefix + '-symbol.json', params_file):
            open(path, 'w').close()
        return prefix
    net = get_symbol(model.graph, model.data_shape, len(VOC_CLASSES))
    side = model.data_shape
    arg_shapes, _, aux_shapes = net.infer_shape(data=(1, 3, side, side))
    rng = np.random.default_rng(0)
    saved = {}
    for name, shape in zip(net.list_arguments(), arg_shapes):
        if name != 'data':
            saved['arg:' + name] = mx.nd.array(rng.standard_normal(shape) * 0.01)
    for name, shape in zip(net.list_auxiliary_states(), aux_shapes):
        saved['aux:' + name] = (mx.nd.ones(shape) if name.endswith('var')
                                else mx.nd.zeros(shape))
    mx.nd.save(params_file, saved)
    net.save(prefix + '-symbol.json')
    return prefix


@pytest.mark.parametrize('model', released.RELEASED_MODELS, ids=lambda m: m.name.split()[0]
                         + '_%d' % m.data_shape)
def test_released_files_resolve_and_run_one_detection(model, tmp_path):
    # the VGG archives unpack into a folder of their own; the others are put straight in
    in_folder = model.legacy_graph
    prefix = write_release_files(model, tmp_path, in_archive_folder=in_folder)
    resolved = released.resolve_released(model.network, model.data_shape, str(tmp_path))
    assert (resolved.network, resolved.prefix, resolved.epoch, resolved.data_shape) == (
        model.graph, prefix, model.epoch, model.data_shape)
    assert load_class_names(resolved.class_names) == VOC_CLASSES
    detector = get_detector(resolved.network, resolved.prefix, resolved.epoch,
                            resolved.data_shape, resolved.mean_pixels, len(VOC_CLASSES))
    image = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    [dets] = detector.detect_batch([image])
    assert dets.ndim == 2 and dets.shape[1] == 6
    assert np.all((dets[:, 0] >= 0) & (dets[:, 0] < len(VOC_CLASSES)))


def test_missing_model_names_the_archive_its_release_page_and_where_to_unpack(tmp_path):
    with pytest.raises(released.ReleasedModelNotFound) as err:
        released.resolve_released('vgg16_reduced', None, str(tmp_path))
    message = str(err.value)
    for expected in ('vgg16_ssd_300_voc0712_trainval.zip', 'vgg16_ssd_512_voc0712_trainval.zip',
                     'https://github.com/zhreshold/mxnet-ssd/releases/tag/v0.5-beta',
                     'ssd_300-0000.params', 'ssd_512-0000.params', 'in %s:' % tmp_path,
                     'unzip vgg16_ssd_300_voc0712_trainval.zip -d %s' % tmp_path):
        assert expected in message
    from config.cli import USER_ERRORS
    assert isinstance(err.value, USER_ERRORS)  # scripts report these as one error line
    with pytest.raises(released.ReleasedModelNotFound, match='released sizes: 512, 608'):
        released.resolve_released('mobilenet', 300, str(tmp_path))


def test_the_smaller_released_size_is_found_first_unless_a_size_is_given(tmp_path):
    vgg300, vgg512 = released.candidates('vgg16_reduced')
    write_release_files(vgg512, tmp_path, weights=False)
    assert released.resolve_released('vgg16_reduced', None, str(tmp_path)).data_shape == 512
    write_release_files(vgg300, tmp_path, weights=False)
    assert released.resolve_released('vgg16_reduced', None, str(tmp_path)).data_shape == 300
    chosen = released.resolve_released('legacy_vgg16_ssd_512', None, str(tmp_path))
    assert (chosen.network, chosen.data_shape) == ('legacy_vgg16_ssd_512', 512)
    assert released.resolve_released('vgg16_reduced', 512, str(tmp_path)).epoch == 0


def demo_args(**changes):
    defaults = dict(network=SHIPPED_MODEL['network'], prefix=SHIPPED_MODEL['prefix'],
                    epoch=None, data_shape=SHIPPED_MODEL['data_shape'],
                    class_names=SHIPPED_MODEL['class_names'], deploy=False,
                    **{'mean_' + c: m for c, m in zip('rgb', SHIPPED_MODEL['mean_pixels'])})
    return argparse.Namespace(**dict(defaults, **changes))


def test_demo_args_are_pointed_at_the_unpacked_release(tmp_path):
    mobilenet512 = released.candidates('mobilenet', 512)[0]
    prefix = write_release_files(mobilenet512, tmp_path, weights=False)
    nowhere = str(tmp_path / 'ssd_mobilenet_224')  # the expanded default: no checkpoint there
    args = demo_args(network='mobilenet', mean_r=100.0)
    model = released.apply_released_model(args, nowhere, str(tmp_path))
    assert model.release is mobilenet512
    assert (args.network, args.prefix, args.epoch, args.data_shape, args.class_names) == (
        'mobilenet', prefix, 1, 512, 'pascal_voc')
    assert (args.mean_r, args.mean_g, args.mean_b) == (100.0, 117, 104)  # explicit one kept
    assert 'MobileNet 512x512' in released.describe(model) and prefix in released.describe(model)
    # flags that default to None (read from a model spec) count as not given too
    args = demo_args(network='mobilenet', data_shape=None, class_names=None, num_classes=None,
                     mean_r=None, mean_g=None, mean_b=None)
    released.apply_released_model(args, nowhere, str(tmp_path))
    assert (args.data_shape, args.class_names, args.num_classes, args.epoch) == (
        512, 'pascal_voc', len(VOC_CLASSES), 1)
    assert (args.mean_r, args.mean_g, args.mean_b) == mobilenet512.mean_pixels
    # a non-square --data-shape runs the release at that size
    args = demo_args(network='mobilenet', data_shape=(300, 500))
    assert released.apply_released_model(args, nowhere, str(tmp_path)).release is mobilenet512
    assert (args.prefix, args.data_shape) == (prefix, (300, 500))
    # left alone: an explicit prefix, a deploy model, the shipped network, an existing checkpoint
    for args in (demo_args(network='mobilenet', prefix='elsewhere/ssd_'),
                 demo_args(network='mobilenet', deploy=True), demo_args()):
        before = vars(args).copy()
        assert released.apply_released_model(args, nowhere, str(tmp_path)) is None
        assert vars(args) == before
    assert released.apply_released_model(demo_args(network='mobilenet'), prefix,
                                         str(tmp_path)) is None
    with pytest.raises(released.ReleasedModelNotFound, match='inceptionv3_512'):
        released.apply_released_model(demo_args(network='inceptionv3'), nowhere, str(tmp_path))


def test_table_lists_every_release_with_its_network_flag():
    table = released.markdown_table().splitlines()
    assert len(table) == 2 + len(released.RELEASED_MODELS)
    assert '| VGG16_reduced 300x300 | 77.8 | `vgg16_ssd_300_voc0712_trainval.zip` (v0.5-beta) | ' \
           '`vgg16_reduced` |' in table
    assert any('79.9' in row and '`vgg16_reduced` --data-shape 512' in row for row in table)


def test_shipped_model_notice_names_its_classes_and_the_way_to_a_real_model():
    assert shipped_model_notice(shipped_prefix()) == SHIPPED_NOTICE
    assert shipped_prefix().endswith(os.path.join('model', 'ssd_mobilenet_0.25_224'))
    for name in load_class_names(SHIPPED_MODEL['class_names']):
        assert name in SHIPPED_NOTICE
    assert '--network vgg16_reduced' in SHIPPED_NOTICE
    assert shipped_model_notice('model/ssd_300') is None
    assert shipped_model_notice(os.path.join('output', 'x', 'ssd_mobilenet_0.25_224')) is None


def test_readme_quotes_the_table():
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'README.md')
    with open(readme, encoding='utf-8') as f:
        assert released.markdown_table() in f.read()
