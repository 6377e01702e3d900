"""Evaluate a trained SSD on a detection record file: run the detector over every image (or
the first ``num_batch`` batches), score it with the VOC07, VOC (area) or COCO metric, and
write the results JSON, one precision-recall plot per class and a per-class AP chart.

Unlike ``Module.score`` this leaves out the filler images of the last batch, so every image
is counted exactly once.
"""
import logging
import os
import time

import mxnet as mx
from tqdm import tqdm

from config import defaults
from dataset.iterator import validation_iter
from detect.runtimes import MXNetRuntime
from symbol import model_io

from .coco_metric import CocoMetric, coco_from_imglist, image_ids_from_imglist, load_coco
from .eval_metric import MApMetric, VOC07MApMetric
from .report import format_ap_table, save_ap_bar_chart, save_pr_curves, write_results_json

logger = logging.getLogger(__name__)

METRICS = {
    'voc07': 'PASCAL VOC2007 11-point interpolated AP',
    'voc': 'PASCAL VOC2010+ AP (area under the monotone precision envelope)',
    'coco': 'COCO AP@[.5:.95] (pycocotools)',
}
OUTPUT_FILES = {'results': 'results.json', 'ap_chart': 'ap_per_class.png'}


class EvaluationError(ValueError):
    """The model, the data or the options do not fit together; the message says how."""


def count_records(path_imgrec):
    """Images in a .rec according to its .idx (None when there is no .idx)."""
    idx = os.path.splitext(path_imgrec)[0] + '.idx'
    if not os.path.isfile(idx):
        return None
    with open(idx) as f:
        return sum(1 for line in f if line.strip())


def create_metric(kind, class_names, ovp_thresh=0.5, use_difficult=False, list_path=None,
                  coco_annotations=None, image_root=None, label_pad_width=-1):
    """The metric object for ``kind`` (see METRICS).  COCO needs the images' COCO ids and
    sizes: from ``coco_annotations`` matched to ``list_path``, or else built from
    ``list_path`` and the images under ``image_root``."""
    if kind not in METRICS:
        raise EvaluationError('unknown metric %r; choose one of %s' % (kind, ', '.join(METRICS)))
    if kind != 'coco':
        metric_cls = VOC07MApMetric if kind == 'voc07' else MApMetric
        return metric_cls(ovp_thresh, use_difficult, class_names)
    if not list_path or not os.path.isfile(list_path):
        raise EvaluationError('the COCO metric needs the .lst the record file was packed from '
                              '(--list-path, or <rec>.lst); not found: %s' % list_path)
    if coco_annotations:
        coco = load_coco(coco_annotations)
        return CocoMetric(coco, image_ids_from_imglist(list_path, coco), class_names)
    if not image_root:
        raise EvaluationError('the COCO metric needs --coco-annotations, or --image-root (the '
                              'folder the .lst paths are relative to) to read image sizes')
    coco = load_coco(coco_from_imglist(list_path, image_root, class_names, use_difficult))
    return CocoMetric(coco, [image['id'] for image in coco.dataset['images']], class_names)


def run_detection(runtime, eval_iter, metric, num_batch=None, frequent=20, total_images=None):
    """Detect every batch (or the first ``num_batch``) with ``runtime`` (``detect(data) ->
    detections``, see detect.runtimes) and feed the metric, leaving out the padding of the
    last batch.  Returns (images evaluated, batches, seconds)."""
    batch_size = eval_iter.provide_data[0].shape[0]
    if num_batch is not None:
        total_images = min(total_images or num_batch * batch_size, num_batch * batch_size)
    bar = tqdm(total=total_images, unit='img', desc='evaluating')
    images, batches, start = 0, 0, time.time()
    eval_iter.reset()
    with bar:   # closed (its line ended) also when the metric raises
        for batch in eval_iter:
            if num_batch is not None and batches >= num_batch:
                break
            detections = runtime.detect(batch.data[0])
            real = batch_size - (batch.pad or 0)
            metric.update([batch.label[0][:real]], [detections[:real]])
            images += real
            batches += 1
            bar.update(real)
            if batches % frequent == 0:
                bar.set_postfix(images_per_sec='%.1f' % (images / (time.time() - start)))
    return images, batches, time.time() - start


def write_report(metric, output_dir, kind):
    """Per-class AP, summary numbers and the plots; returns the results entries."""
    per_class = dict(zip(metric.names(), metric.class_aps()))
    summary = metric.summary()
    headline = summary['AP'] if kind == 'coco' else summary['mAP']
    results = {'per_class_ap': per_class, 'summary': summary,
               'table': format_ap_table(per_class, summary)}
    if kind == 'coco':
        results['coco_summary'] = metric.summary_text
    if output_dir:
        curves = save_pr_curves(metric.pr_curves(), output_dir, aps=per_class)
        chart = save_ap_bar_chart(per_class, os.path.join(output_dir, OUTPUT_FILES['ap_chart']),
                                  mean_ap=headline, title='%s per class' % METRICS[kind])
        results['files'] = {'pr_curves': curves, 'ap_chart': chart,
                            'results': os.path.join(output_dir, OUTPUT_FILES['results'])}
    return results


def evaluate_net(net, path_imgrec, num_classes, mean_pixels, data_shape, model_prefix, epoch,
                 ctx=mx.cpu(), batch_size=32, path_imglist='', nms_thresh=defaults.NMS_THRESH,
                 force_nms=defaults.FORCE_NMS, nms_topk=defaults.NMS_TOPK,
                 ovp_thresh=defaults.EVAL_IOU, use_difficult=False, class_names=None,
                 metric='voc07', num_batch=None, frequent=20, output_dir=None,
                 coco_annotations=None, image_root=None,
                 label_pad_width=defaults.EVAL_LABEL_WIDTH, preset_overrides=None,
                 runtime=None):
    """Evaluate ``<model_prefix>-<epoch>`` on ``path_imgrec``; returns the results dict (also
    written as ``results.json`` with the plots into ``output_dir`` when given).

    ``net``: network name for the test symbol, or None to use the checkpoint's symbol
    (deploy models).  ``mean_pixels``: RGB means the model was trained with.
    ``class_names``: default class_0..; their number must equal ``num_classes``.
    ``label_pad_width``: label values per image in the iterator (-1: sized from the data).
    ``preset_overrides``: the preset fields the model was trained with.
    ``runtime``: a detect.runtimes runtime (an exported ONNX model) to run instead of the
    checkpoint on MXNet; ``net``, ``model_prefix`` and ``epoch`` then only label the results."""
    class_names = list(class_names or ['class_%d' % i for i in range(num_classes)])
    if len(class_names) != num_classes:
        raise EvaluationError('%d class names given for %d classes: %s'
                              % (len(class_names), num_classes, class_names))
    list_path = path_imglist or os.path.splitext(path_imgrec)[0] + '.lst'
    scorer = create_metric(metric, class_names, ovp_thresh, use_difficult, list_path,
                           coco_annotations, image_root)
    if runtime is None:
        model_io.require_files([model_io.params_path(model_prefix, epoch)], model_prefix)
    eval_iter = validation_iter(path_imgrec, batch_size, data_shape, mean_pixels,
                                label_pad_width, path_imglist, num_classes)
    if runtime is None:
        runtime = MXNetRuntime(model_io.bind_for_inference(
            *model_io.inference_model(model_prefix, epoch, dict(
                network=net, data_shape=data_shape, num_classes=num_classes,
                nms_thresh=nms_thresh, force_nms=force_nms, nms_topk=nms_topk,
                preset_overrides=preset_overrides)),
            eval_iter.provide_data[0], ctx, model_io.params_path(model_prefix, epoch)))
    try:
        images, batches, seconds = run_detection(runtime, eval_iter, scorer, num_batch,
                                                 frequent, count_records(path_imgrec))
    except ValueError as err:   # the metric's own checks, e.g. a class id beyond the model
        raise EvaluationError('%s: %s (the model has %d classes: %s)'
                              % (path_imgrec, err, num_classes, ', '.join(class_names)))
    results = {
        'metric': metric, 'metric_description': METRICS[metric],
        'model': {'prefix': model_prefix, 'epoch': epoch, 'network': net or 'deploy symbol',
                  'data_shape': data_shape},
        'data': {'rec_path': path_imgrec, 'list_path': path_imglist, 'num_images': images,
                 'num_batches': batches, 'batch_size': batch_size},
        'settings': {'nms_thresh': nms_thresh, 'force_nms': force_nms, 'nms_topk': nms_topk,
                     'overlap_thresh': ovp_thresh, 'use_difficult': use_difficult,
                     'mean_pixels': list(mean_pixels), 'class_names': class_names},
        'speed': {'seconds': seconds, 'images_per_sec': images / seconds if seconds else None},
    }
    results.update(write_report(scorer, output_dir, metric))
    if output_dir:
        write_results_json(results['files']['results'], results)
    return results
