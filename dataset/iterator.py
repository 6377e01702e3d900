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
    (see `estimate_label_pad_width`).  `**aug`: ImageDetRecordIter keywords such as
    `config.config.cfg.train`, plus `num_parts` / `part_index` for sharding.
    """

    def __init__(self, path_imgrec, batch_size, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS,
                 label_pad_width=-1, path_imglist='', **aug):
        super().__init__(batch_size)
        for path in (path_imgrec, path_imglist):
            if path and not os.path.isfile(path):
                raise FileNotFoundError('record/list file not found: %s' % path)
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

    def reset(self):
        self.rec.reset()

    def next(self):
        batch = self.rec.next()
        end = self.label_start + self.max_objects * self.object_width
        label = batch.label[0][:, self.label_start:end].reshape(
            (-1, self.max_objects, self.object_width))
        return mx.io.DataBatch(data=batch.data, label=[label], pad=batch.pad, index=batch.index,
                               provide_data=self.provide_data, provide_label=self.provide_label)


def validation_iter(path_imgrec, batch_size, data_shape, mean_pixels=DEFAULT_MEAN_PIXELS,
                    label_pad_width=defaults.EVAL_LABEL_WIDTH, path_imglist=''):
    """Batches of a validation / evaluation .rec without augmentation (``cfg.valid``), each
    image exactly once per pass: ``round_batch=False``, because MXNet's default wraps the last
    batch around, and a reset after the prefetcher reached that point starts the next pass
    mid-file, skipping images.  The last batch is padded (``batch.pad`` says how many)."""
    return DetRecordIter(path_imgrec, batch_size, data_shape, mean_pixels=mean_pixels,
                         label_pad_width=label_pad_width, path_imglist=path_imglist,
                         **dict(cfg.valid, round_batch=False))


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
        raise


def estimate_label_pad_width(*paths_imgrec):
    """Smallest label_pad_width that fits every record of the given .rec files (reads them all;
    use it to give train and validation iterators the same label shape)."""
    width = 0
    for path in paths_imgrec:
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
