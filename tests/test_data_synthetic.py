"""The synthetic shapes dataset: fast to prepare, deterministic, labels that match the drawn
shapes, and the variety it promises (classes, scales, overlaps, empty images, real-photo
backgrounds and negatives from the training photos only)."""
import os
import time

import numpy as np
import pytest

from config.config import cfg
from dataset import photos, synthetic
from dataset.imdb import load_class_names, read_imglist
from dataset.iterator import DetRecordIter

NUM_TRAIN, NUM_VAL = 240, 60
SETTINGS = synthetic.SETTINGS
NO_PHOTOS = dict(photo_empty_prob=0.0, photo_background_prob=0.0)


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
    # object-free photo crops (none by default), plus 5% of the rest without objects
    expected = (SETTINGS['photo_empty_prob'] +
                (1 - SETTINGS['photo_empty_prob']) * SETTINGS['empty_image_prob'])
    assert 0.6 * expected * NUM_TRAIN <= empty <= 1.5 * expected * NUM_TRAIN
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
                 objects_per_image=(1,), objects_weights=(1,), **NO_PHOTOS)
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


def test_without_photos_every_image_is_as_before_and_validation_never_has_photos():
    """Photos come from a random stream of their own: switching them off gives back the images
    of generator version 1 (checked once against it), and validation images never change."""
    for number in range(6):
        val = synthetic.render_image(0, 'val', number, 224)[0]
        np.testing.assert_array_equal(
            val, synthetic.render_image(0, 'val', number, 224, NO_PHOTOS)[0])
    photo_train = [synthetic.render_image(0, 'train', n, 224, synthetic.PHOTO_NEGATIVES)[0]
                   for n in range(12)]
    plain_train = [synthetic.render_image(0, 'train', n, 224, NO_PHOTOS)[0] for n in range(12)]
    changed = sum(not (a.shape == b.shape and np.array_equal(a, b))
                  for a, b in zip(photo_train, plain_train))
    assert 1 <= changed <= 10  # 12 images, 40% use a photo


def test_photo_images_use_training_photos_only(monkeypatch):
    used = []
    real_load = photos.load_photo
    monkeypatch.setattr(photos, 'load_photo', lambda name: used.append(name) or real_load(name))
    settings = dict(photo_empty_prob=0.5, photo_background_prob=0.5)
    empty = 0
    for number in range(40):
        image, objects = synthetic.render_image(2, 'train', number, 160, settings)
        empty += not objects
        assert image.dtype == np.uint8 and image.ndim == 3
    assert len(used) == 40 and set(used) <= set(photos.TRAIN) and len(set(used)) >= 5
    assert not set(used) & set(photos.HELD_OUT)
    assert 10 <= empty <= 30
    val_objects = [synthetic.render_image(2, 'val', n, 160, dict(photo_empty_prob=1.0))[1]
                   for n in range(10)]
    assert sum(map(bool, val_objects)) >= 8 and len(used) == 40  # no photo in validation


def test_photo_crops_keep_the_target_shape_and_come_from_one_window(monkeypatch):
    """A fake photo whose channels hold x, y and a constant: every crop must be one
    axis-aligned window of it (maybe mirrored, channels in any order) with the target's aspect
    ratio and a shorter side within `scale` of the photo's."""
    yy, xx = np.mgrid[0:200, 0:250]
    fake = np.stack([xx, yy, np.full_like(xx, 251)], -1).astype(np.uint8)
    monkeypatch.setattr(photos, 'load_photo', lambda name: fake)
    rng = np.random.default_rng(0)
    for height, width in ((100, 60), (80, 120), (90, 90)):
        crop = photos.random_crop(rng, height, width, scale=(0.4, 0.8))
        assert crop.shape == (height, width, 3) and crop.dtype == np.float32
        constant = int(np.argmin(crop.reshape(-1, 3).std(0)))
        assert np.allclose(crop[..., constant], 251)
        varies_across = [c for c in range(3) if c != constant
                         and np.abs(np.diff(crop[..., c], axis=1)).mean() > 0.2]
        varies_down = [c for c in range(3) if c != constant
                       and np.abs(np.diff(crop[..., c], axis=0)).mean() > 0.2]
        assert len(varies_across) == len(varies_down) == 1 and varies_across != varies_down
        x_span = np.ptp(crop[..., varies_across[0]]) + 1
        y_span = np.ptp(crop[..., varies_down[0]]) + 1
        assert abs(x_span / y_span - width / height) < 0.1 * width / height
        assert 0.4 * 200 - 3 <= min(x_span, y_span) <= 0.8 * 200 + 3


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match='photo_empty'):
        synthetic.render_image(0, 'train', 0, settings={'photo_empty': 0.5})


def test_distractors_are_drawn_but_never_labelled():
    """Distractors (their own random stream) change training images, never the labels, and
    never a validation image; with distractor_prob 0 every image is as before."""
    on = dict(distractor_prob=1.0)
    changed = 0
    for number in range(8):
        plain, plain_objects = synthetic.render_image(0, 'train', number, 160)
        image, objects = synthetic.render_image(0, 'train', number, 160, on)
        assert objects == plain_objects  # same shapes at the same boxes: nothing added
        changed += not np.array_equal(image, plain)
        val = synthetic.render_image(0, 'val', number, 160)[0]
        np.testing.assert_array_equal(val, synthetic.render_image(0, 'val', number, 160, on)[0])
    assert changed == 8
    np.testing.assert_array_equal(synthetic.render_image(0, 'train', 3, 160)[0],
                                  synthetic.render_image(0, 'train', 3, 160,
                                                         dict(distractor_prob=0.0))[0])


def test_distractors_on_a_plain_background_are_stars_and_soft_blobs(monkeypatch):
    """With no shapes, every changed pixel belongs to a distractor: stars have sharp edges
    (anti-aliasing only), blobs soft ones; both are drawn somewhere in 20 images."""
    plain = dict(background_cells=(1, 1), texture_amplitude=(0.0, 0.0), clutter_lines=(0, 0),
                 noise_sigma=(0.0, 0.0), blur_prob=0.0, outline_prob=0.0, empty_image_prob=1.0,
                 distractor_prob=1.0, distractors_per_image=(1, 1), **NO_PHOTOS)
    for key, value in plain.items():
        monkeypatch.setitem(synthetic.SETTINGS, key, value)
    edges = []
    for number in range(20):
        image, objects = synthetic.render_image(0, 'train', number, 160)
        assert objects == []
        difference = np.abs(image.astype(int) - image[0, 0].astype(int)).max(-1)
        assert difference.max() > 40  # a distractor was drawn
        touched = difference > 3
        edges.append((touched & (difference < 0.8 * difference.max())).sum() / touched.sum())
    # share of partly blended pixels: thin anti-aliased rims (stars) or wide soft rims (blobs)
    assert min(edges) < 0.15 and max(edges) > 0.3


def test_star_tips_alternate_with_the_inner_radius():
    points = synthetic._star(5, 0.4)
    radii = np.hypot(points[:, 0], points[:, 1])
    np.testing.assert_allclose(radii, [1.0, 0.4] * 5)
    np.testing.assert_allclose(points[0], [0, -1], atol=1e-12)  # the first tip points up


def test_validation_images_are_still_those_of_the_demo_folder():
    """data/demo/README.md lists the objects generator version 1 drew for the demo images
    (seed 7, validation split): every later setting must leave them as they were (a change
    of the order of the random draws would move the shapes)."""
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'data', 'demo', 'README.md')
    with open(readme, encoding='utf-8') as f:
        rows = [line.split('|') for line in f if line.startswith('| shapes')]
    numbers = (0, 2, 4, 7, 9, 6)  # the README's recipe: shapes<k>.jpg is number numbers[k-1]
    assert len(rows) == len(numbers)
    for row, number in zip(rows, numbers):
        listed = [item.split() for item in row[3].split(';')]
        _, objects = synthetic.render_image(7, 'val', number, 320)
        assert [o[0] for o in objects] == [item[0] for item in listed], row[1]
        np.testing.assert_allclose([o[1:] for o in objects],
                                   [[float(v) for v in item[1:]] for item in listed], atol=0.06)
