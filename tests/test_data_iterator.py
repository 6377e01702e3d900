"""DetRecordIter on MXNet's C++ ImageDetRecordIter (label layout, mirror and crop geometry,
label-width errors, the SSD augmentation config) and the pure-Python DetIter."""
import cv2
import mxnet as mx
import numpy as np
import pytest

from config.config import cfg
from dataset.imdb import packed_label
from dataset.iterator import DetIter, DetRecordIter, LabelWidthError, estimate_label_pad_width
from dataset.testdb import TestDB

SIDE = 256
# Objects [cls, xmin, ymin, xmax, ymax, difficult] spread over the image, so that crops keep
# some and drop others.
BOXES = np.array([[0, .05, .05, .30, .30, 0], [1, .50, .10, .90, .40, 1],
                  [2, .20, .60, .45, .95, 0], [3, .60, .60, .80, .80, 0],
                  [1, .35, .35, .55, .50, 0]], np.float32)


def coordinate_image():
    """RGB image whose red value is the column and green value the row: any crop can be read
    back from the pixels it produced."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    return np.stack([xx, yy, np.full_like(xx, 128)], -1).astype(np.uint8)


def write_rec(path, labels, image=None):
    """One PNG record per label (lossless, so pixel values survive exactly)."""
    image = coordinate_image() if image is None else image
    png = cv2.imencode('.png', image[:, :, ::-1])[1].tobytes()
    writer = mx.recordio.MXIndexedRecordIO(str(path) + '.idx', str(path) + '.rec', 'w')
    for i, label in enumerate(labels):
        header = mx.recordio.IRHeader(0, packed_label(label), i, 0)
        writer.write_idx(i, mx.recordio.pack(header, png))
    writer.close()
    return str(path) + '.rec'


def batches(it, epochs=1):
    """[(data, label)] as numpy, without the padding samples of a last partial batch."""
    out = []
    for _ in range(epochs):
        it.reset()
        for b in it:
            n = it.batch_size - b.pad
            out.append((b.data[0].asnumpy()[:n], b.label[0].asnumpy()[:n]))
    return out


def only(**aug):
    """No augmentation except `aug`, RGB values kept (zero mean), order kept."""
    return dict(cfg.valid, shuffle=False, **aug)


def test_labels_are_padded_rows_of_objects(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES, BOXES[:2], BOXES[:0]])
    it = DetRecordIter(rec, 3, 64, **only())
    assert it.provide_data[0].name == 'data' and it.provide_data[0].shape == (3, 3, 64, 64)
    assert it.provide_label[0].name == 'label' and it.provide_label[0].shape == (3, 5, 6)
    assert it.label_pad_width == estimate_label_pad_width(rec) == 2 + 6 * 5
    (_, label), = batches(it)
    np.testing.assert_allclose(label[0], BOXES, atol=1e-6)
    np.testing.assert_allclose(label[1, :2], BOXES[:2], atol=1e-6)
    assert (label[1, 2:] == -1).all() and (label[2] == -1).all()

    wider = DetRecordIter(rec, 3, 64, label_pad_width=50, **only())
    assert wider.provide_label[0].shape == (3, 8, 6)
    np.testing.assert_allclose(batches(wider)[0][1][0, :5], BOXES, atol=1e-6)


def test_too_small_label_width_says_the_width_needed(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES, BOXES[:1]])
    with pytest.raises(LabelWidthError) as err:
        DetRecordIter(rec, 2, 64, label_pad_width=14, **only())
    message = str(err.value)
    assert 'label_pad_width=14 is too small' in message and '>= 32' in message
    assert '5 objects' in message and rec in message


def test_missing_record_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.rec'):
        DetRecordIter(str(tmp_path / 'nothere.rec'), 2, 64)


def test_mirror_maps_boxes_exactly(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES] * 4)
    mean = dict(mean_pixels=(0, 0, 0))
    (plain_data, plain), = batches(DetRecordIter(rec, 4, SIDE, **mean, **only()))
    mirrored = DetRecordIter(rec, 4, SIDE, **mean, **only(rand_mirror_prob=1.0))
    (flip_data, flipped), = batches(mirrored)
    expected = BOXES.copy()
    expected[:, [1, 3]] = 1 - BOXES[:, [3, 1]]
    for k in range(4):
        np.testing.assert_allclose(flipped[k], expected, atol=1e-6)
        np.testing.assert_array_equal(flip_data[k], plain_data[k][:, :, ::-1])
    np.testing.assert_allclose(plain[0], BOXES, atol=1e-6)


def crop_window(data):
    """The crop (x0, y0, x1, y1, normalised) that produced `data` from the coordinate image:
    bilinear resizing keeps the red/green ramps linear, so a line fitted to the middle of the
    first row/column gives the crop's offset and size (the borders may be clamped)."""
    side = data.shape[-1]
    j = np.arange(side // 8, side - side // 8)
    window = []
    for channel, profile in ((0, data[0, 0, :]), (1, data[1, :, 0])):
        slope, intercept = np.polyfit(j + 0.5, profile[j], 1)
        start = intercept + 0.5  # pixel centres: value = start + (j + 0.5) * slope - 0.5
        window.append((start, start + slope * side))
    (x0, x1), (y0, y1) = window
    return np.array([x0, y0, x1, y1]) / SIDE


def test_random_crops_keep_centred_objects_clipped_to_the_crop(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES] * 8)
    crop_only = {k: v for k, v in cfg.train.items() if 'crop' in k}
    it = DetRecordIter(rec, 8, SIDE, mean_pixels=(0, 0, 0),
                       **only(**dict(crop_only, rand_crop_prob=1.0)))
    centres = (BOXES[:, 1:3] + BOXES[:, 3:5]) / 2
    checked_crops = dropped = 0
    for data, labels in batches(it, epochs=4):
        for image, label in zip(data, labels):
            kept = label[label[:, 0] >= 0]
            assert ((kept[:, 1:5] >= 0) & (kept[:, 1:5] <= 1)).all()
            assert (kept[:, 1] < kept[:, 3]).all() and (kept[:, 2] < kept[:, 4]).all()
            crop = crop_window(image)
            if np.allclose(crop, [0, 0, 1, 1], atol=0.01):
                continue  # this sample was not cropped (every trial failed)
            assert (image[2] == 128).all()  # colour untouched
            margin = np.minimum(np.abs(centres - crop[:2]), np.abs(centres - crop[2:])).min(1)
            inside = ((centres > crop[:2]) & (centres < crop[2:])).all(1)
            unambiguous = margin > 0.01
            expected = BOXES[inside]
            size = np.tile(crop[2:] - crop[:2], 2)
            expected_boxes = np.clip((expected[:, 1:5] - np.tile(crop[:2], 2)) / size, 0, 1)
            if unambiguous.all():
                np.testing.assert_array_equal(kept[:, 0], expected[:, 0])
                # the pixel crop truncates the float crop box the labels use: <= 1 pixel in
                # offset and in size
                tolerance = 2.5 / (size * SIDE) + 0.002
                error = np.abs(kept[:, 1:5] - expected_boxes)
                assert (error <= tolerance).all(), (kept, expected_boxes)
                np.testing.assert_array_equal(kept[:, 5], expected[:, 5])
                checked_crops += 1
                dropped += len(BOXES) - len(kept)
    assert checked_crops >= 10 and dropped > 0


def iou(box, boxes):
    inter = np.prod(np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]),
                            0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def test_crop_sampler_honours_its_minimum_iou(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES] * 8)
    sampler = dict(rand_crop_prob=1.0, num_crop_sampler=1, min_crop_overlaps=(0.5,),
                   min_crop_scales=(0.3,), min_crop_aspect_ratios=(0.5,),
                   max_crop_aspect_ratios=(2.0,), max_crop_trials=(25,))
    it = DetRecordIter(rec, 8, SIDE, mean_pixels=(0, 0, 0), **only(**sampler))
    best = [iou(crop_window(image), BOXES[:, 1:5]).max()
            for data, _ in batches(it, epochs=4) for image in data
            if not np.allclose(crop_window(image), [0, 0, 1, 1], atol=0.01)]
    assert len(best) >= 3 and min(best) >= 0.5 - 0.03


def test_training_config_keeps_labels_valid(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES, BOXES[:2], BOXES[:0], BOXES[3:]] * 4)
    it = DetRecordIter(rec, 8, 96, **cfg.train)
    assert it.provide_label[0].shape == (8, 5, 6)
    for data, labels in batches(it, epochs=2):
        assert data.shape == (8, 3, 96, 96) and np.isfinite(data).all()
        valid = labels[labels[:, :, 0] >= 0]
        assert set(np.unique(valid[:, 0])) <= {0, 1, 2, 3}
        assert ((valid[:, 1:5] >= 0) & (valid[:, 1:5] <= 1)).all()
        assert (valid[:, 1] < valid[:, 3]).all() and (valid[:, 2] < valid[:, 4]).all()
        padding = labels[labels[:, :, 0] < 0]
        assert (padding == -1).all()


def between(values, low, high):
    return (values > low) & (values < high)


def test_zoom_out_places_the_image_on_a_mean_filled_canvas(tmp_path):
    whole_image = np.array([[0, 0, 0, 1, 1, 0]], np.float32)
    white = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rec = write_rec(tmp_path / 'a', [whole_image] * 8, image=white)
    mean = np.array([123, 117, 104], np.float32)
    out = 64
    it = DetRecordIter(rec, 8, out, mean_pixels=tuple(mean),
                       **only(rand_pad_prob=1.0, max_pad_scale=4.0))
    (data, labels), = batches(it)
    centres = np.arange(out) + 0.5
    zoomed_out = 0
    for image, label in zip(data, labels):
        x0, y0, x1, y1 = label[0, 1:5] * out
        inside = np.outer(between(centres, y0 + 1, y1 - 1), between(centres, x0 + 1, x1 - 1))
        outside = ~np.outer(between(centres, y0 - 1, y1 + 1), between(centres, x0 - 1, x1 + 1))
        assert (np.abs(image[:, inside] - (255 - mean)[:, None]) <= 1).all()
        fill = round(float(mean.mean())) - mean  # canvas = mean pixel: ~0 after subtraction
        assert (np.abs(image[:, outside] - fill[:, None]) <= 1).all()
        zoomed_out += outside.any()
    assert zoomed_out >= 4


def test_sharding_splits_the_records(tmp_path):
    rec = write_rec(tmp_path / 'a', [BOXES[:1 + i % 5] for i in range(8)])
    seen = []
    for part in range(2):
        it = DetRecordIter(rec, 4, 32, num_parts=2, part_index=part, **only(round_batch=False))
        seen.append([int((l[:, 0] >= 0).sum()) for _, labels in batches(it) for l in labels])
    assert sorted(seen[0] + seen[1]) == sorted(1 + i % 5 for i in range(8))


def test_detiter_resizes_subtracts_mean_and_pads_last_batch(tmp_path):
    paths = []
    for k, (h, w) in enumerate([(40, 60), (50, 50), (30, 80)]):
        image = np.random.RandomState(k).randint(0, 255, (h, w, 3), dtype=np.uint8)
        paths.append(str(tmp_path / ('%d.png' % k)))
        cv2.imwrite(paths[-1], image)
    it = DetIter(TestDB(paths), 2, (24, 32), mean_pixels=(10, 20, 30))
    assert it.provide_data[0].shape == (2, 3, 24, 32) and it.provide_label == []
    got = list(it)
    assert [b.pad for b in got] == [0, 1]
    rgb = cv2.imread(paths[2])[:, :, ::-1]
    expected = cv2.resize(rgb, (32, 24), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    expected = expected.astype(np.float32) - np.array([10, 20, 30]).reshape(3, 1, 1)
    np.testing.assert_allclose(got[1].data[0].asnumpy()[0], expected)
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        TestDB('0.png,nope.jpg', root_dir=str(tmp_path))


def test_detiter_unreadable_image_is_named(tmp_path):
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not a jpeg')
    with pytest.raises(IOError, match='bad.jpg'):
        next(iter(DetIter(TestDB([str(bad)]), 1, 32)))


def test_classification_records_are_explained(tmp_path):
    png = cv2.imencode('.png', coordinate_image())[1].tobytes()
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'c.idx'), str(tmp_path / 'c.rec'), 'w')
    for i in range(2):
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, 3.0, i, 0), png))
    writer.close()
    with pytest.raises(ValueError, match='without detection labels.*prepare_dataset.py'):
        DetRecordIter(str(tmp_path / 'c.rec'), 2, 32)
