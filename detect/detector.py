"""SSD inference: load a checkpoint, run it on image files or already-decoded images, draw
the results.

Detections are returned per image as a float32 array of rows
``[class_id, score, xmin, ymin, xmax, ymax]`` with coordinates normalised to [0, 1] and
0-based class ids (no background); rows the network suppressed (class -1) are left out, and
no score threshold is applied here (the detection operator keeps scores >= 0.01).
"""
import glob
import os
import time

import cv2
import mxnet as mx
import numpy as np

from dataset.iterator import DEFAULT_MEAN_PIXELS, DetIter, image_hw
from dataset.testdb import TestDB
from evaluate.evaluate_net import bind_detector

from . import visualize


class ModelFilesNotFound(FileNotFoundError):
    """A checkpoint file is missing; the message names every expected path."""


def checkpoint_paths(model_prefix, epoch):
    return '%s-symbol.json' % model_prefix, '%s-%04d.params' % (model_prefix, epoch)


def available_epochs(model_prefix):
    """Epochs with a params file next to ``model_prefix`` (to suggest one when asked for a
    missing epoch)."""
    epochs = []
    for path in glob.glob(glob.escape(model_prefix) + '-*.params'):
        suffix = path[len(model_prefix) + 1:-len('.params')]
        if suffix.isdigit():
            epochs.append(int(suffix))
    return sorted(epochs)


def require_files(paths, model_prefix):
    missing = [path for path in paths if not os.path.isfile(path)]
    if not missing:
        return
    epochs = available_epochs(model_prefix)
    hint = ('epochs found for this prefix: %s' % ', '.join(map(str, epochs)) if epochs else
            'no checkpoint at all with this prefix (check --prefix, --network, --data-shape)')
    raise ModelFilesNotFound('model file(s) not found: %s; %s'
                             % (', '.join(missing), hint))


def detection_symbol(symbol, source):
    """The graph of a deploy model (detection output only).  A training graph is refused:
    its detection depends on the label input; build the test graph from the network name
    instead (or export one with deploy.py)."""
    outputs = symbol.list_outputs()
    if 'label' in symbol.list_arguments() or len(outputs) != 1:
        raise ValueError('%s is a training graph (outputs %s), not a deploy model: give the '
                         'network name instead of --deploy, or export it with deploy.py'
                         % (source, ', '.join(outputs)))
    return symbol


def load_model(model_prefix, epoch, symbol=None):
    """(symbol, arg_params, aux_params) of ``<model_prefix>-<epoch>``.  ``symbol`` None: the
    checkpoint's own graph (a deploy model), otherwise only the parameters are read."""
    symbol_file, params_file = checkpoint_paths(model_prefix, epoch)
    require_files([params_file] if symbol is not None else [symbol_file, params_file],
                  model_prefix)
    if symbol is None:
        import symbol as _registers_multibox_operators  # noqa: F401 (graphs may use ours)
        symbol = detection_symbol(mx.sym.load(symbol_file), symbol_file)
    arg_params, aux_params = mx.model.load_params(model_prefix, epoch)
    return symbol, arg_params, aux_params


def as_bgr(image, source):
    """A 3-channel uint8 BGR view of a decoded image (grey and BGRA are converted)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError('%s: expected an H x W x 3 BGR image, got shape %s'
                         % (source, image.shape))
    return image


def valid_rows(output):
    """The rows of one image's detection output that hold a detection (class id >= 0)."""
    return output[output[:, 0] >= 0]


class Detector:
    """SSD detector around an MXNet Module.

    symbol: the test Symbol (``symbol.symbol_factory.get_symbol``), or None to use the
        checkpoint's own ``-symbol.json`` (a deploy model made by deploy.py).
    model_prefix, epoch: the checkpoint ``<model_prefix>-<epoch:04d>.params``.
    data_shape: network input, an int or (height, width); images are resized to it.
    mean_pixels: RGB means the model was trained with.
    batch_size: images per forward pass.  ctx: an MXNet context (or list), default CPU.
    """

    def __init__(self, symbol, model_prefix, epoch, data_shape,
                 mean_pixels=DEFAULT_MEAN_PIXELS, batch_size=1, ctx=None):
        self.data_shape = image_hw(data_shape)
        self.mean_pixels = tuple(float(m) for m in mean_pixels)
        self.batch_size = int(batch_size)
        self.ctx = ctx or mx.cpu()
        self.model_prefix, self.epoch = model_prefix, epoch
        self.symbol, arg_params, aux_params = load_model(model_prefix, epoch, symbol)
        data_desc = mx.io.DataDesc('data', (self.batch_size, 3) + tuple(self.data_shape))
        self.module = bind_detector(self.symbol, arg_params, aux_params, data_desc, self.ctx,
                                    checkpoint_paths(model_prefix, epoch)[1])
        self._mean = np.array(self.mean_pixels, np.float32).reshape(3, 1, 1)
        self.last_detection_seconds = 0.0

    def detect_iter(self, det_iter, show_timer=False):
        """Detections for every image a DetIter (or any iterator of `data` batches of this
        batch size) yields, leaving out the padding of the last batch."""
        results, seconds = [], 0.0
        for batch in det_iter:
            start = time.time()
            results.extend(self._forward(batch.data[0], self.batch_size - (batch.pad or 0)))
            seconds += time.time() - start
        self._report_time(len(results), seconds, show_timer)
        return results

    def im_detect(self, im_list, root_dir=None, extension=None, show_timer=False):
        """Detections for image files: ``im_list`` a list of paths or a comma-separated
        string, each joined to ``root_dir`` and given ``extension`` when set."""
        det_iter = DetIter(TestDB(im_list, root_dir=root_dir, extension=extension),
                           self.batch_size, self.data_shape, self.mean_pixels)
        return self.detect_iter(det_iter, show_timer)

    def detect_batch(self, images, show_timer=False):
        """Detections for decoded images: a list of H x W x 3 uint8 BGR arrays (what
        ``cv2.imread`` and ``cv2.VideoCapture`` give), any number, any sizes."""
        results, seconds = [], 0.0
        for first in range(0, len(images), self.batch_size):
            chunk = images[first:first + self.batch_size]
            data = np.zeros((self.batch_size, 3) + tuple(self.data_shape), np.float32)
            for k, image in enumerate(chunk):
                data[k] = self.preprocess(as_bgr(image, 'image %d' % (first + k)))
            start = time.time()
            results.extend(self._forward(mx.nd.array(data), len(chunk)))
            seconds += time.time() - start
        self._report_time(len(results), seconds, show_timer)
        return results

    def preprocess(self, image_bgr):
        """Network input for one BGR image, prepared as DetIter prepares image files: RGB,
        bilinear resize to the data shape (aspect ratio not kept), mean subtracted, CHW."""
        height, width = self.data_shape
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        resized = cv2.resize(rgb, (width, height),
                                       interpolation=cv2.INTER_LINEAR)
        return resized.transpose(2, 0, 1).astype(np.float32) - self._mean

    def _forward(self, data, num_real):
        self.module.forward(mx.io.DataBatch(data=[data]), is_train=False)
        output = self.module.get_outputs()[0].asnumpy()
        return [valid_rows(output[k]) for k in range(num_real)]

    def _report_time(self, num_images, seconds, show_timer):
        self.last_detection_seconds = seconds
        if show_timer:
            print('Detection time for %d images: %.4f sec' % (num_images, seconds))

    def visualize_detection(self, img, dets, classes=(), thresh=0.5, show=True, title=None):
        """Draw the detections scoring >= ``thresh`` on a copy of the BGR image ``img``
        (class names from ``classes``, else ids); show it with matplotlib when ``show``.
        Returns the annotated copy."""
        annotated = visualize.draw_detections(img, dets, classes, thresh)
        if show:
            visualize.show_image(annotated, title)
        return annotated

    def detect_and_visualize(self, im_list, root_dir=None, extension=None, classes=(),
                             thresh=0.5, show_timer=False, show=True):
        """im_detect, then draw each image's detections; returns (detections, annotated
        images)."""
        dets = self.im_detect(im_list, root_dir, extension, show_timer)
        db = TestDB(im_list, root_dir=root_dir, extension=extension)
        annotated = [self.visualize_detection(cv2.imread(db.image_path_from_index(i)),
                                              d, classes, thresh, show,
                                              db.image_path_from_index(i))
                     for i, d in enumerate(dets)]
        return dets, annotated


def resolve_epoch(model_prefix, epoch):
    """``epoch``, or when None the newest one saved with ``model_prefix``."""
    if epoch is not None:
        return int(epoch)
    epochs = available_epochs(model_prefix)
    if not epochs:
        raise ModelFilesNotFound('no checkpoint found: expected %s-<epoch>.params (check '
                                 '--prefix, --network and --data-shape)' % model_prefix)
    return epochs[-1]


def get_detector(network, model_prefix, epoch, data_shape, mean_pixels, num_classes,
                 nms_thresh=0.45, force_nms=True, nms_topk=400, batch_size=1, ctx=None):
    """A Detector for the test graph of ``network`` (NMS settings applied), or with
    ``network`` None for the checkpoint's own graph (a deploy model: its NMS settings were
    fixed when it was exported)."""
    symbol = None
    if network is not None:
        from symbol.symbol_factory import get_symbol
        symbol = get_symbol(network, data_shape, num_classes, nms_thresh=nms_thresh,
                            force_suppress=force_nms, nms_topk=nms_topk)
    return Detector(symbol, model_prefix, resolve_epoch(model_prefix, epoch), data_shape,
                    mean_pixels, batch_size, ctx)
