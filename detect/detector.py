"""SSD inference: load a checkpoint, run it on image files or already-decoded images, draw
the results.

Detections are returned per image as a float32 array of rows
``[class_id, score, xmin, ymin, xmax, ymax]`` with coordinates normalised to [0, 1] and
0-based class ids (no background); rows the network suppressed (class -1) are left out, and
no score threshold is applied here (the detection operator keeps scores >= 0.01).
"""
import time

import cv2
import mxnet as mx
import numpy as np

from config import defaults
from dataset.iterator import DetIter, image_hw, preprocess_image
from dataset.testdb import TestDB
from symbol import model_io

from . import visualize
from .runtimes import MXNetRuntime

ModelFilesNotFound = model_io.ModelError


def load_model(model_prefix, epoch, symbol=None):
    """(symbol, arg_params, aux_params) of ``<model_prefix>-<epoch>``.  ``symbol`` None: the
    checkpoint's own graph (a deploy model), otherwise only the parameters are read."""
    params_file = model_io.params_path(model_prefix, epoch)
    if symbol is None:
        model_io.require_files([model_io.symbol_path(model_prefix), params_file], model_prefix)
        symbol = model_io.deploy_symbol(model_io.load_symbol(model_prefix),
                                        model_io.symbol_path(model_prefix))
    arg_params, aux_params = model_io.load_params(model_prefix, epoch)
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
    """SSD detector: image handling around a network runtime (detect.runtimes).  Built from
    a checkpoint it binds an MXNet Module (``module``; ``runtime`` wraps it);
    ``Detector.on_runtime`` puts another runtime (an exported ONNX model) behind it.

    symbol: the test Symbol (``symbol.symbol_factory.get_symbol``), or None to use the
        checkpoint's own ``-symbol.json`` (a deploy model made by deploy.py).
    model_prefix, epoch: the checkpoint ``<model_prefix>-<epoch:04d>.params``.
    data_shape: network input, an int or (height, width); images are resized to it.
    mean_pixels: RGB means the model was trained with.
    batch_size: images per forward pass.  ctx: an MXNet context (or list), default CPU.
    """

    def __init__(self, symbol, model_prefix, epoch, data_shape,
                 mean_pixels=defaults.MEAN_PIXELS, batch_size=1, ctx=None):
        self._set_input(data_shape, mean_pixels, batch_size, model_prefix, epoch)
        self.ctx = ctx or mx.cpu()
        self.symbol, arg_params, aux_params = load_model(model_prefix, epoch, symbol)
        data_desc = mx.io.DataDesc('data', (self.batch_size, 3) + tuple(self.data_shape))
        self.module = model_io.bind_for_inference(
            self.symbol, arg_params, aux_params, data_desc, self.ctx,
            model_io.params_path(model_prefix, epoch))
        self.runtime = MXNetRuntime(self.module)

    @classmethod
    def on_runtime(cls, runtime, data_shape, mean_pixels=defaults.MEAN_PIXELS, batch_size=1,
                   source='', epoch=None):
        """A Detector whose network runs on ``runtime`` (see detect.runtimes: an exported ONNX
        model on ONNX Runtime or OpenVINO); ``source`` names the model in reports."""
        detector = cls.__new__(cls)   # no MXNet module to bind: only the input geometry
        detector._set_input(data_shape, mean_pixels, batch_size, source, epoch)
        detector.runtime = runtime
        return detector

    def _set_input(self, data_shape, mean_pixels, batch_size, model_prefix, epoch):
        self.data_shape = image_hw(data_shape)
        self.mean_pixels = tuple(float(m) for m in mean_pixels)
        self.batch_size = int(batch_size)
        self.model_prefix, self.epoch = model_prefix, epoch
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
        """Network input for one BGR image, prepared as DetIter prepares image files."""
        return preprocess_image(image_bgr, self.data_shape, self.mean_pixels)

    def _forward(self, data, num_real):
        output = self.runtime.detect(data)
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


def get_detector(network, model_prefix, epoch, data_shape, mean_pixels, num_classes,
                 nms_thresh=defaults.NMS_THRESH, force_nms=defaults.FORCE_NMS,
                 nms_topk=defaults.NMS_TOPK, batch_size=1, ctx=None, preset_overrides=None):
    """A Detector for the test graph of ``network`` (NMS settings applied), or with
    ``network`` None for the checkpoint's own graph (a deploy model: its NMS settings were
    fixed when it was exported)."""
    symbol = None
    if network is not None:
        symbol = model_io.inference_symbol(dict(
            network=network, data_shape=data_shape, num_classes=num_classes,
            nms_thresh=nms_thresh, force_nms=force_nms, nms_topk=nms_topk,
            preset_overrides=preset_overrides))
    return Detector(symbol, model_prefix, model_io.resolve_epoch(model_prefix, epoch),
                    data_shape, mean_pixels, batch_size, ctx)


def detector_from_settings(prefix, epoch, settings, deploy=False, batch_size=1, ctx=None):
    """A Detector of ``model_io.open_model``'s settings (``deploy``: the saved graph)."""
    return get_detector(None if deploy else settings['network'], prefix, epoch,
                        settings['data_shape'], settings['mean_pixels'],
                        settings['num_classes'], settings['nms_thresh'], settings['force_nms'],
                        settings['nms_topk'], batch_size, ctx, settings['preset_overrides'])
