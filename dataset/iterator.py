"""Detection data iterators.

`DetRecordIter` (training, validation, evaluation) wraps MXNet's C++ `ImageDetRecordIter`, which
decodes and augments in native threads, and reshapes its flat labels into
`(batch, max_objects, object_width)` rows `[cls, xmin, ymin, xmax, ymax, difficult]` padded
with -1; `validation_iter` is the one way to read a validation / evaluation set (every image
exactly once).  `DetIter` is a small pure-Python iterator over image files for inference, and
`preprocess_image` the one preparation of a decoded image for the network.
"""
import os
import re

import cv2
import mxnet as mx
import numpy as np

from config import defaults
from config.config import cfg
from symbol.model_io import image_hw  # noqa: F401  (re-exported: the iterators' shape rule)

from .checks import check_label_rows, check_record_file
from .imdb import read_imglist

DEFAULT_MEAN_PIXELS = defaults.MEAN_PIXELS
# ImageDetRecordIter writes 4 values before each record's own label (the last being its
# length); the record's label then starts with [header_width, object_width, ...].
LABEL_PREFIX = 4
MIN_OBJECT_WIDTH = 5  # cls, xmin, ymin, xmax, ymax
_WIDTH_ERROR = re.compile(r'label_pad_width: (\d+) smaller than estimated width: (\d+)')
_NOT_DETECTION_ERROR = re.compile(r'label_width >= 7 |Not enough label packed')


class LabelWidthError(ValueError):
    """`label_pad_width` cannot hold the labels of some image; the message says what fits."""


class DetRecordIter(mx.io.DataIter):
    """Batches from a detection .rec packed with labels `[2, 6, objects...]`.

    `data_shape`: int or (H, W).  `mean_pixels`: RGB means subtracted from the data.
    `label_pad_width`: label values per image (2 + 6 x max objects); -1 lets MXNet find the
    largest in the file.  Train and validation iterators of one model must use the same value
    (see `estimate_label_pad_width`).  `num_classes`: when given, every batch's class ids are
    checked against it (`dataset.checks.LabelError` otherwise).  `**aug`: ImageDetRecordIter
    keywords such as `config.config.cfg.train`, plus `num_parts` / `part_index` for sharding.

    The record file is checked first (`dataset.checks.check_record_file`: whole, and consistent
    with its .idx); `num_records` says how many images it holds.
    """

    def __init__(self, path_imgrec, batch_size, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS,
                 label_pad_width=-1, path_imglist='', num_classes=None, **aug):
        super().__init__(batch_size)
        if path_imglist and not os.path.isfile(path_imglist):
            raise FileNotFoundError('list file not found: %s' % path_imglist)
        self.num_records = check_record_file(path_imgrec)
        check_batch_size(batch_size, self.num_records, path_imgrec, aug)
        if path_imglist:
            check_imglist_labels(path_imglist, num_classes)
        self.num_classes = num_classes
        height, width = image_hw(data_shape)
        aug.setdefault('fill_value', int(round(float(np.mean(mean_pixels)))))
        aug.setdefault('verbose', False)
        self.path_imgrec = path_imgrec
        self.rec = _create_record_iter(
            path_imgrec=path_imgrec, path_imglist=path_imglist, batch_size=batch_size,
            data_shape=(3, height, width), label_pad_width=label_pad_width,
            mean_r=mean_pixels[0], mean_g=mean_pixels[1], mean_b=mean_pixels[2], **aug)
        self._read_label_geometry()
        self.provide_data = [mx.io.DataDesc('data', (batch_size, 3, height, width))]
        self.provide_label = [
            mx.io.DataDesc('label', (batch_size, self.max_objects, self.object_width))]

    def _read_label_geometry(self):
        # MXDataIter decodes the first batch on construction; peek at it rather than consume
        # and reset, which would decode the first chunk (up to 8 MB of images) a second time
        batch = getattr(self.rec, 'first_batch', None)
        if batch is None:
            batch = self.rec.next()
            self.rec.reset()
        first = batch.label[0].asnumpy()
        header_width, object_width = int(first[0, LABEL_PREFIX]), int(first[0, LABEL_PREFIX + 1])
        if header_width < 2 or object_width < MIN_OBJECT_WIDTH:
            raise ValueError(
                '%s: labels do not start with [header_width>=2, object_width>=5] (got %s, %s): '
                'records must be packed as detection labels [2, 6, cls, xmin, ymin, xmax, ymax, '
                'difficult, ...]; prepare them with tools/prepare_dataset.py'
                % (self.path_imgrec, first[0, LABEL_PREFIX], first[0, LABEL_PREFIX + 1]))
        self.label_pad_width = first.shape[1] - LABEL_PREFIX
        self.label_start = LABEL_PREFIX + header_width
        self.object_width = object_width
        self.max_objects = (first.shape[1] - self.label_start) // object_width
        self._batches_read = 0
        self._check_labels(self._object_rows(batch.label[0]), batch.pad)

    def _object_rows(self, flat_label):
        end = self.label_start + self.max_objects * self.object_width
        return flat_label[:, self.label_start:end].reshape(
            (-1, self.max_objects, self.object_width))

    def _check_labels(self, label, pad):
        # cheap (a few KB per batch) and it catches a --num-class below the data's class ids
        # here, naming the file, rather than as an IndexError deep in the metric.  The `pad`
        # filler samples of a last partial batch hold whatever was in the buffer: not checked.
        check_label_rows(label[:self.batch_size - (pad or 0)].asnumpy(), self.num_classes,
                         '%s (batch %d)' % (self.path_imgrec, self._batches_read))

    def reset(self):
        self.rec.reset()
        self._batches_read = 0

    def next(self):
        batch = self.rec.next()
        label = self._object_rows(batch.label[0])
        self._check_labels(label, batch.pad)
        self._batches_read += 1
        return mx.io.DataBatch(data=batch.data, label=[label], pad=batch.pad, index=batch.index,
                               provide_data=self.provide_data, provide_label=self.provide_label)


def check_batch_size(batch_size, num_records, path_imgrec, aug):
    """A batch must be a positive number of images; with `round_batch` (MXNet's default, used
    for training) it must not exceed the images of the file (or of one shard), since every
    batch would then hold some images twice.  Evaluation (round_batch=False) pads instead."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError('batch size must be a positive whole number, got %r' % (batch_size,))
    per_part = num_records // max(1, int(aug.get('num_parts', 1)))
    if aug.get('round_batch', True) and batch_size > per_part:
        raise ValueError('batch size %d is larger than the %d images of %s%s: every batch would '
                         'repeat images; use a batch size <= %d (train.py --batch-size)'
                         % (batch_size, per_part, path_imgrec,
                            ' per shard' if aug.get('num_parts', 1) > 1 else '', max(1, per_part)))


def check_imglist_labels(path_imglist, num_classes=None):
    """Parse every line of a detection .lst (MXNet would read a malformed value as 0) and check
    its labels; errors name the file and line."""
    for idx, label, _ in read_imglist(path_imglist, keep_padding=True):
        check_label_rows(label, num_classes, '%s (image index %d)' % (path_imglist, idx))


def validation_iter(path_imgrec, batch_size, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS,
                    label_pad_width=defaults.EVAL_LABEL_WIDTH, path_imglist='', num_classes=None):
    """Batches of a validation / evaluation .rec without augmentation (``cfg.valid``), each
    image exactly once per pass: ``round_batch=False``, because MXNet's default wraps the last
    batch around, and a reset after the prefetcher reached that point starts the next pass
    mid-file, skipping images.  The last batch is padded (``batch.pad`` says how many).
    ``num_classes``: class ids are checked against it (see DetRecordIter)."""
    return DetRecordIter(path_imgrec, batch_size, data_shape, mean_pixels=mean_pixels,
                         label_pad_width=label_pad_width, path_imglist=path_imglist,
                         num_classes=num_classes, **dict(cfg.valid, round_batch=False))


def _create_record_iter(**kwargs):
    """mx.io.ImageDetRecordIter, with its two commonest data errors explained."""
    try:
        return mx.io.ImageDetRecordIter(**kwargs)
    except mx.base.MXNetError as err:
        path, message = kwargs['path_imgrec'], str(err)
        width_error = _WIDTH_ERROR.search(message)
        if width_error:
            given, needed = (int(v) for v in width_error.groups())
            raise LabelWidthError(
                'label_pad_width=%d is too small for %s: its largest label needs %d values '
                '(2 header values + 6 per object, i.e. %d objects); pass label_pad_width >= %d '
                '(train.py / evaluate.py --label-width %d), or -1 to size it from the data'
                % (given, path, needed, (needed - 2) // 6, needed, needed)) from None
        if _NOT_DETECTION_ERROR.search(message):
            raise ValueError(
                '%s holds records without detection labels (each needs [2, 6, cls, xmin, ymin, '
                'xmax, ymax, difficult, ...] packed in its header, as im2rec --pack-label '
                'writes from a detection .lst); prepare it with tools/prepare_dataset.py'
                % path) from None
        raise ValueError('%s: MXNet cannot read it: %s' % (path, message.strip().splitlines()[-1])) \
            from None


def estimate_label_pad_width(*paths_imgrec):
    """Smallest label_pad_width that fits every record of the given .rec files (reads them all;
    use it to give train and validation iterators the same label shape)."""
    width = 0
    for path in paths_imgrec:
        check_record_file(path)   # a bad file is named, not a raw MXNetError mid-read
        reader = mx.recordio.MXRecordIO(path, 'r')
        try:
            for item in iter(reader.read, None):
                width = max(width, mx.recordio.unpack(item)[0].flag)
        finally:
            reader.close()
    return width


def preprocess_image(image_bgr, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS):
    """Network input (3, H, W) float32 for one decoded BGR uint8 image, as training saw its
    images: RGB, bilinear resize to ``data_shape`` (aspect ratio not kept), RGB
    ``mean_pixels`` subtracted, times ``defaults.PIXEL_SCALE``."""
    height, width = image_hw(data_shape)
    rgb = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), (width, height),
                     interpolation=cv2.INTER_LINEAR)
    mean = np.asarray(mean_pixels, np.float32).reshape(3, 1, 1)
    chw = rgb.transpose(2, 0, 1).astype(np.float32) - mean
    return chw if defaults.PIXEL_SCALE == 1 else chw * np.float32(defaults.PIXEL_SCALE)


class DetIter(mx.io.DataIter):
    """Batches of image files from an Imdb (e.g. `TestDB`) for inference, prepared by
    `preprocess_image`.  The last batch is filled with zero images and `pad` says how many.
    """

    def __init__(self, imdb, batch_size, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS):
        super().__init__(batch_size)
        self.imdb = imdb
        self.height, self.width = image_hw(data_shape)
        self.mean_pixels = mean_pixels
        self.provide_data = [mx.io.DataDesc('data', (batch_size, 3, self.height, self.width))]
        self.provide_label = []
        self.reset()

    def reset(self):
        self._cursor = 0

    def next(self):
        if self._cursor >= self.imdb.num_images:
            raise StopIteration
        indices = list(range(self._cursor, min(self._cursor + self.batch_size,
                                               self.imdb.num_images)))
        self._cursor += self.batch_size
        data = np.zeros((self.batch_size, 3, self.height, self.width), np.float32)
        for k, i in enumerate(indices):
            data[k] = self.preprocess(self.imdb.image_path_from_index(i))
        return mx.io.DataBatch(data=[mx.nd.array(data)], label=None,
                               pad=self.batch_size - len(indices), index=indices,
                               provide_data=self.provide_data, provide_label=self.provide_label)

    def preprocess(self, path):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise IOError('cannot read image %s (missing or corrupt)' % path)
        return preprocess_image(image, (self.height, self.width), self.mean_pixels)
