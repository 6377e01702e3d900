"""The synthetic shapes dataset: fast to prepare, deterministic, labels that match the drawn
shapes, and the variety it promises (classes, scales, overlaps, empty images)."""
import os
import time

import numpy as np
import pytest

from config.config import cfg
from dataset import synthetic
from dataset.imdb import load_class_names, read_imglist
from dataset.iterator import DetRecordIter

NUM_TRAIN, NUM_VAL = 240, 60


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    start = time.time()
    info = synthetic.prepare(str(tmp_path_factory.mktemp('synthetic')), num_train=NUM_TRAIN,
                             num_val=NUM_VAL, seed=1, progress=False)
    info['elapsed'] = time.time() - start
    return info


def test_a_few_hundred_images_prepare_well_under_a_minute(prepared):
    assert prepared['elapsed'] < 45, prepared['elapsed']
    assert (prepared['num_train'], prepared['num_val']) == (NUM_TRAIN, NUM_VAL)
    assert prepared['class_names'] == load_class_names(prepared['names_file'])
    assert prepared['class_names'] == load_class_names('synthetic')
    assert os.path.isdir(os.path.join(prepared['root'], 'JPEGImages'))
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        assert len(read_imglist(prepared[split + '_lst'])) == count
        with open(prepared[split + '_idx']) as f:
            assert len(f.read().splitlines()) == count
    val_paths = [e[2] for e in read_imglist(prepared['val_lst'])]
    assert val_paths == ['val_%06d.jpg' % i for i in range(NUM_VAL)]  # validation not shuffled


def test_records_feed_the_training_iterator(prepared):
    it = DetRecordIter(prepared['train_rec'], 8, 300, label_pad_width=prepared['label_width'],
                       **dict(cfg.train, prefetch_buffer=1))
    batch = next(iter(it))
    assert batch.data[0].shape == (8, 3, 300, 300)
    labels = batch.label[0].asnumpy()
    assert labels.shape == (8, (prepared['label_width'] - 2) // 6, 6)
    objects = labels[labels[:, :, 0] >= 0]
    assert len(objects) and set(np.unique(objects[:, 0])) <= {0, 1, 2, 3}


def test_dataset_has_the_promised_variety(prepared):
    imdb = synthetic.load_split(prepared['root'], 'train')
    assert imdb.num_images == NUM_TRAIN and not list(imdb.issues)
    labels = [record.label for record in imdb.records]
    counts = np.bincount(np.concatenate([l[:, 0] for l in labels]).astype(int), minlength=4)
    assert len(counts) == 4 and counts.min() > 0.15 * counts.sum()
    empty = sum(len(l) == 0 for l in labels)
    assert 1 <= empty <= 0.12 * NUM_TRAIN
    sizes = np.array([r.size for r in imdb.records])
    assert len(set(map(tuple, sizes))) > 50 and sizes.min() >= 270 and sizes.max() <= 330

    scales = []
    overlapping_images = 0
    for record in imdb.records:
        width, height = record.size
        boxes = record.label[:, 1:5] * [width, height, width, height]
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        scales += list(sides / min(width, height))
        overlapping_images += any(pair_overlap(a, b)
                                  for i, a in enumerate(boxes) for b in boxes[i + 1:])
    scales = np.array(scales)
    assert scales.min() >= 0.075 and scales.max() <= 0.61
    assert (scales < 0.15).mean() > 0.1 and (scales > 0.4).mean() > 0.15
    assert overlapping_images >= 0.1 * NUM_TRAIN


def pair_overlap(a, b):
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_rendering_is_deterministic_per_seed_split_and_number():
    image, objects = synthetic.render_image(3, 'train', 5)
    again, objects_again = synthetic.render_image(3, 'train', 5)
    np.testing.assert_array_equal(image, again)
    assert objects == objects_again
    other_seed = synthetic.render_image(4, 'train', 5)[0]
    assert other_seed.shape != image.shape or not np.array_equal(other_seed, image)
    assert not np.array_equal(synthetic.render_image(3, 'val', 5)[0][:50, :50], image[:50, :50])


def test_generated_trees_are_identical_for_one_seed(tmp_path):
    for name in ('a', 'b'):
        synthetic.generate(str(tmp_path / name), num_train=5, num_val=2, seed=7, progress=False)
    for sub in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
        files = sorted(os.listdir(tmp_path / 'a' / sub))
        assert files == sorted(os.listdir(tmp_path / 'b' / sub)) and files
        for name in files:
            first, second = (tmp_path / tree / sub / name for tree in ('a', 'b'))
            assert first.read_bytes() == second.read_bytes()
    stamp = os.path.getmtime(tmp_path / 'a' / 'JPEGImages' / 'train_000000.jpg')
    synthetic.generate(str(tmp_path / 'a'), num_train=5, num_val=2, seed=7, progress=False)
    assert os.path.getmtime(tmp_path / 'a' / 'JPEGImages' / 'train_000000.jpg') == stamp  # reused


def test_boxes_are_tight_around_the_drawn_shapes(monkeypatch):
    """On a plain background without noise, outline or blur, the pixels that differ from the
    background span exactly the labelled box (to a pixel)."""
    plain = dict(background_cells=(1, 1), texture_amplitude=(0.0, 0.0), clutter_lines=(0, 0),
                 noise_sigma=(0.0, 0.0), blur_prob=0.0, outline_prob=0.0, empty_image_prob=0.0,
                 objects_per_image=(1,), objects_weights=(1,))
    for key, value in plain.items():
        monkeypatch.setitem(synthetic.SETTINGS, key, value)
    seen = set()
    for number in range(24):
        image, [(name, *box)] = synthetic.render_image(0, 'train', number)
        background = image[0, 0].astype(int)
        ys, xs = np.nonzero(np.abs(image.astype(int) - background).max(-1) > 40)
        drawn = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(drawn, box, atol=2)  # anti-aliased edges bleed a pixel
        seen.add(name)
    assert seen == set(synthetic.CLASSES)
