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

from .coco_metric import CocoMetric, coco_from_imglist, image_ids_from_imglist, load_coco
from .eval_metric import MApMetric, VOC07MApMetric
from .report import format_ap_table, save_ap_bar_chart, save_pr_curves, write_results_json

logger = logging.getLogger(__name__)

METRICS = {
    'voc07': 'PASCAL VOC2007 11-point interpolated AP',
    'voc': 'PASCAL VOC2010+ AP (area under the monotone precision envelope)',
    'coco': 'COCO AP@[.5:.95] (pycocotools)',
}
DETECTION_OUTPUT = 'detection_output'
OUTPUT_FILES = {'results': 'results.json', 'ap_chart': 'ap_per_class.png'}


class EvaluationError(ValueError):
    """The model, the data or the options do not fit together; the message says how."""


def shape_tag(data_shape):
    """'300' for a square input, '256x320' (height x width) otherwise."""
    if isinstance(data_shape, int):
        return str(data_shape)
    height, width = data_shape
    return str(height) if height == width else '%dx%d' % (height, width)


def expand_prefix(prefix, network, data_shape):
    """A prefix ending in '_' names a model by network and input size, as demo.py and
    deploy.py do: 'model/ssd_' -> 'model/ssd_mobilenet_0.25_300'."""
    if prefix.endswith('_') and network:
        return '%s%s_%s' % (prefix, network, shape_tag(data_shape))
    return prefix


def load_detector(network, prefix, epoch, data_shape, num_classes, nms_thresh=0.45,
                  force_nms=False, nms_topk=400):
    """(symbol, arg_params, aux_params).  ``network=None`` (deploy): the checkpoint's own
    symbol, which must output the detections; otherwise the test symbol is built from the
    network name and only the parameters are loaded."""
    params_file = '%s-%04d.params' % (prefix, epoch)
    if not os.path.isfile(params_file):
        raise EvaluationError('model parameters not found: %s (check --prefix and --epoch)'
                              % params_file)
    if network is None:
        symbol_file = '%s-symbol.json' % prefix
        if not os.path.isfile(symbol_file):
            raise EvaluationError('deploy symbol not found: %s' % symbol_file)
        import symbol as _registers_multibox_operators  # noqa: F401 (the saved graph uses them)
        symbol = detection_output_of(mx.sym.load(symbol_file), symbol_file)
    else:
        from symbol.symbol_factory import get_symbol
        symbol = get_symbol(network, data_shape, num_classes, nms_thresh=nms_thresh,
                            force_suppress=force_nms, nms_topk=nms_topk)
    arg_params, aux_params = mx.model.load_params(prefix, epoch)
    return symbol, arg_params, aux_params


def detection_output_of(symbol, source):
    """The symbol itself when it has one output; from a multi-output (training) symbol, its
    ``detection_output``."""
    outputs = symbol.list_outputs()
    if len(outputs) == 1:
        return symbol
    if DETECTION_OUTPUT not in outputs:
        raise EvaluationError('%s has outputs %s and none is %r: --deploy needs a symbol whose '
                              'output is the detection (see deploy.py)'
                              % (source, outputs, DETECTION_OUTPUT))
    logger.info('%s: using output %r of %s', source, DETECTION_OUTPUT, outputs)
    return symbol[outputs.index(DETECTION_OUTPUT)]


def check_params(symbol, data_desc, arg_params, aux_params, source):
    """Every parameter the symbol needs is there with the right shape; otherwise say which
    ones are not (the usual cause: another --network, --data-shape or --num-class)."""
    arg_shapes, _, aux_shapes = symbol.infer_shape(**{data_desc.name: data_desc.shape})
    needed = dict(zip(symbol.list_arguments(), arg_shapes))
    needed.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    given = dict(arg_params, **aux_params)
    problems = ['%s missing' % name if name not in given else
                '%s is %s, network needs %s' % (name, given[name].shape, tuple(shape))
                for name, shape in needed.items()
                if name != data_desc.name
                and (name not in given or given[name].shape != tuple(shape))]
    if problems:
        raise EvaluationError('%s does not fit the network (%d problems: %s%s); check '
                              '--network, --data-shape and --num-class'
                              % (source, len(problems), '; '.join(problems[:3]),
                                 '; ...' if len(problems) > 3 else ''))


def bind_detector(symbol, arg_params, aux_params, data_desc, ctx, source):
    check_params(symbol, data_desc, arg_params, aux_params, source)
    module = mx.mod.Module(symbol, data_names=(data_desc.name,), label_names=None, context=ctx)
    module.bind(data_shapes=[data_desc], for_training=False)
    module.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    return module


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
    bar.close()
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
                 ctx=mx.cpu(), batch_size=32, path_imglist='', nms_thresh=0.45, force_nms=False,
                 nms_topk=400, ovp_thresh=0.5, use_difficult=False, class_names=None,
                 metric='voc07', num_batch=None, frequent=20, output_dir=None,
                 coco_annotations=None, image_root=None, label_pad_width=-1, runtime=None):
    """Evaluate ``<model_prefix>-<epoch>`` on ``path_imgrec``; returns the results dict (also
    written as ``results.json`` with the plots into ``output_dir`` when given).

    ``net``: network name for the test symbol, or None to use the checkpoint's symbol
    (deploy models).  ``mean_pixels``: RGB means the model was trained with.
    ``class_names``: default class_0..; their number must equal ``num_classes``.
    ``label_pad_width``: label values per image in the iterator (-1: sized from the data).
    ``runtime``: a detect.runtimes runtime (an exported ONNX model) to run instead of the
    checkpoint on MXNet; ``net``, ``model_prefix`` and ``epoch`` then only label the results."""
    from config.config import cfg
    from dataset.iterator import DetRecordIter
    class_names = list(class_names or ['class_%d' % i for i in range(num_classes)])
    if len(class_names) != num_classes:
        raise EvaluationError('%d class names given for %d classes: %s'
                              % (len(class_names), num_classes, class_names))
    list_path = path_imglist or os.path.splitext(path_imgrec)[0] + '.lst'
    scorer = create_metric(metric, class_names, ovp_thresh, use_difficult, list_path,
                           coco_annotations, image_root)
    # round_batch=False: MXNet's default wraps the last batch around, and a reset after the
    # prefetcher reached that point starts the next pass mid-file, skipping images
    eval_iter = DetRecordIter(path_imgrec, batch_size, data_shape, mean_pixels=mean_pixels,
                              label_pad_width=label_pad_width, path_imglist=path_imglist,
                              **dict(cfg.valid, round_batch=False))
    if runtime is None:
        from detect.runtimes import MXNetRuntime  # not at the top: detect imports this module
        symbol, arg_params, aux_params = load_detector(net, model_prefix, epoch, data_shape,
                                                       num_classes, nms_thresh, force_nms,
                                                       nms_topk)
        runtime = MXNetRuntime(bind_detector(symbol, arg_params, aux_params,
                                             eval_iter.provide_data[0], ctx,
                                             '%s-%04d.params' % (model_prefix, epoch)))
    images, batches, seconds = run_detection(runtime, eval_iter, scorer, num_batch, frequent,
                                             count_records(path_imgrec))
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
