"""Evaluate a trained SSD model on a detection .rec: mAP (VOC07 11-point, VOC area) or COCO
AP, a per-class AP table, results.json and plots in --output-dir.

    python evaluate.py --rec-path data/val.rec                  # what train.py wrote by default
    python evaluate.py --rec-path data/val.rec --prefix output/exp1/ssd --epoch 240
    python evaluate.py --rec-path data/val.rec --network vgg16_reduced --data-shape 300 \\
        --prefix model/ssd_ --epoch 240 --num-class 20 --class-names pascal_voc  # no model spec

Model settings come from <prefix>-model.json (train.py writes it); flags override them.
"""
import argparse
import logging
import os
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported
from config import cli, defaults  # noqa: E402
from evaluate.evaluate_net import METRICS, evaluate_net  # noqa: E402
from evaluate.options import resolve_metric  # noqa: E402
from train.options import TrainOptions  # noqa: E402

# For checkpoints without a model spec: train.py's defaults.
FALLBACK = dict(network=TrainOptions.network, data_shape=TrainOptions.data_shape,
                num_classes=TrainOptions.num_class, mean_pixels=defaults.MEAN_PIXELS)


def parse_args(argv=None):
    cwd = os.getcwd()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=cli.HelpFormatter)
    p.add_argument('--rec-path', default=os.path.join(cwd, 'data', 'val.rec'),
                   help='detection record file to evaluate on')
    p.add_argument('--list-path', default='',
                   help='.lst of the record file: labels read from it instead of the .rec '
                        '(COCO metric: also the image order; default <rec>.lst)')
    cli.add_model_args(p, TrainOptions.prefix, '(default: train.py\'s default prefix)')
    cli.add_nms_args(p)
    cli.add_device_args(p)
    cli.add_runtime_args(p)
    p.add_argument('--batch-size', type=cli.positive_int, default=32,
                   help='images per forward pass')
    p.add_argument('--label-width', type=int, default=defaults.EVAL_LABEL_WIDTH,
                   help='label values per image (2 + 6 x max objects); -1: sized from the data')
    p.add_argument('--overlap', dest='overlap_thresh', type=float, default=defaults.EVAL_IOU,
                   help='IoU above which a detection matches a ground truth')
    p.add_argument('--use-difficult', action=cli.BOOL, default=False,
                   help='count difficult objects like any other')
    p.add_argument('--voc07', action=cli.BOOL, default=None,
                   help='VOC07 11-point AP (default) or, with --no-voc07, VOC area AP')
    p.add_argument('--metric', choices=sorted(METRICS), default=None,
                   help='metric (overrides --voc07): %s' % '; '.join(
                       '%s = %s' % kv for kv in sorted(METRICS.items())))
    p.add_argument('--deploy', action=cli.BOOL, default=False,
                   help='use <prefix>-symbol.json as it is (a deploy model) instead of '
                        'building the network')
    p.add_argument('--frequent', type=int, default=20, help='speed shown every N batches')
    p.add_argument('--num-batch', type=cli.positive_int, default=None,
                   help='evaluate only N batches')
    p.add_argument('--output-dir', default=os.path.join(cwd, 'output', 'evaluate'),
                   help='where results.json and the plots go')
    p.add_argument('--coco-annotations', default=None,
                   help='COCO instances JSON of the evaluated images (COCO metric)')
    p.add_argument('--image-root', default=None,
                   help='folder the .lst image paths are relative to (COCO metric without '
                        '--coco-annotations: image sizes are read from the images)')
    args = p.parse_args(argv)
    try:
        args.metric = resolve_metric(args.metric, args.voc07)
        args.ctx = cli.contexts(args.gpus, args.cpu)
    except ValueError as err:
        p.error(str(err))
    return args


@cli.command
def main(argv=None):
    from dataset.imdb import load_class_names
    from symbol import model_io
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    fallback = dict(FALLBACK, class_names=load_class_names('pascal_voc'))
    runtime = None
    if args.runtime == 'mxnet':
        prefix, _, settings = cli.open_model(args, fallback)
        epoch = model_io.resolve_epoch(prefix, args.epoch)
    else:   # the exported model: settings from its metadata
        from detect.runtimes import exported_epoch, open_exported_model
        runtime, prefix, settings = open_exported_model(args.runtime, args.prefix,
                                                        cli.model_flags(args), fallback)
        epoch = exported_epoch(runtime)
    network = None if args.deploy or settings.get('deploy') else settings['network']
    results = evaluate_net(
        network, args.rec_path, settings['num_classes'],
        settings['mean_pixels'], settings['data_shape'], prefix, epoch, ctx=args.ctx,
        batch_size=args.batch_size, path_imglist=args.list_path,
        nms_thresh=settings['nms_thresh'], force_nms=settings['force_nms'],
        nms_topk=settings['nms_topk'], ovp_thresh=args.overlap_thresh,
        use_difficult=args.use_difficult, class_names=settings['class_names'],
        metric=args.metric, num_batch=args.num_batch, frequent=args.frequent,
        output_dir=args.output_dir, coco_annotations=args.coco_annotations,
        image_root=args.image_root, label_pad_width=args.label_width,
        preset_overrides=settings['preset_overrides'], runtime=runtime)
    print(results.get('coco_summary', ''), end='')
    print(results['table'])
    print('%d images, %.1f images/sec; results and plots in %s'
          % (results['data']['num_images'], results['speed']['images_per_sec'] or 0,
             args.output_dir))
    return results


if __name__ == '__main__':
    status = main()
    sys.exit(status if isinstance(status, int) else 0)
