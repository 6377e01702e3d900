"""Evaluate a trained SSD model on a detection .rec: mAP (VOC07 11-point, VOC area) or COCO
AP, a per-class AP table, results.json and plots in --output-dir.

    python evaluate.py --rec-path data/val.rec --network mobilenet_0.25 --data-shape 300 \\
        --prefix model/ssd_ --epoch 240 --num-class 20 --class-names pascal_voc
"""
import argparse
import logging
import os
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported
from evaluate.evaluate_net import METRICS, evaluate_net, expand_prefix  # noqa: E402
from evaluate.options import contexts, parse_data_shape, resolve_metric  # noqa: E402
from detect.runtimes import add_runtime_argument  # noqa: E402

BOOL = argparse.BooleanOptionalAction


def parse_args(argv=None):
    cwd = os.getcwd()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--rec-path', default=os.path.join(cwd, 'data', 'val.rec'),
                   help='detection record file to evaluate on')
    p.add_argument('--list-path', default='',
                   help='.lst of the record file: labels read from it instead of the .rec '
                        '(COCO metric: also the image order; default <rec>.lst)')
    p.add_argument('--network', default='vgg16_reduced', help='network the model was built with')
    p.add_argument('--batch-size', type=int, default=32, help='images per forward pass')
    p.add_argument('--num-class', type=int, default=20, help='classes, without background')
    p.add_argument('--class-names', default='pascal_voc',
                   help='"a,b,c", a file with one name per line, or a name in dataset/names')
    p.add_argument('--label-width', type=int, default=-1,
                   help='label values per image (2 + 6 x max objects); -1: sized from the data')
    p.add_argument('--epoch', type=int, default=0, help='epoch of the checkpoint to load')
    p.add_argument('--prefix', default=os.path.join(cwd, 'model', 'ssd_'),
                   help="checkpoint prefix; ending in '_' appends <network>_<data shape>")
    p.add_argument('--gpus', default=None,
                   help="GPU ids, e.g. '0,1'; not given: GPU 0 if MXNet sees one, else the CPU")
    p.add_argument('--cpu', action=BOOL, default=False, help='run on the CPU')
    p.add_argument('--data-shape', type=parse_data_shape, default=300, help='"S" or "H,W"')
    for channel, mean in zip('rgb', (123, 117, 104)):
        p.add_argument('--mean-' + channel, type=float, default=mean,
                       help='mean subtracted from the %s channel (as in training)'
                            % dict(r='red', g='green', b='blue')[channel])
    p.add_argument('--nms', dest='nms_thresh', type=float, default=0.45, help='NMS threshold')
    p.add_argument('--nms-topk', type=int, default=400, help='detections kept before NMS')
    p.add_argument('--force-nms', action=BOOL, default=False,
                   help='suppress overlapping boxes across classes too')
    p.add_argument('--overlap', dest='overlap_thresh', type=float, default=0.5,
                   help='IoU above which a detection matches a ground truth')
    p.add_argument('--use-difficult', action=BOOL, default=False,
                   help='count difficult objects like any other')
    p.add_argument('--voc07', action=BOOL, default=None,
                   help='VOC07 11-point AP (default) or, with --no-voc07, VOC area AP')
    p.add_argument('--metric', choices=sorted(METRICS), default=None,
                   help='metric (overrides --voc07): %s' % '; '.join(
                       '%s = %s' % kv for kv in sorted(METRICS.items())))
    p.add_argument('--deploy', action=BOOL, default=False,
                   help='use <prefix>-symbol.json as it is (a deploy model) instead of '
                        'building the network')
    p.add_argument('--frequent', type=int, default=20, help='speed shown every N batches')
    p.add_argument('--num-batch', type=int, default=None, help='evaluate only N batches')
    p.add_argument('--output-dir', default=os.path.join(cwd, 'output', 'evaluate'),
                   help='where results.json and the plots go')
    p.add_argument('--coco-annotations', default=None,
                   help='COCO instances JSON of the evaluated images (COCO metric)')
    p.add_argument('--image-root', default=None,
                   help='folder the .lst image paths are relative to (COCO metric without '
                        '--coco-annotations: image sizes are read from the images)')
    add_runtime_argument(p)
    args = p.parse_args(argv)
    try:
        args.metric = resolve_metric(args.metric, args.voc07)
        args.ctx = contexts(args.gpus, args.cpu)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv=None):
    from dataset.imdb import load_class_names
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    network = None if args.deploy else args.network
    prefix = expand_prefix(args.prefix, args.network, args.data_shape)
    runtime, data_shape, mean = None, args.data_shape, (args.mean_r, args.mean_g, args.mean_b)
    if args.runtime != 'mxnet':
        from detect.runtimes import open_exported_model
        try:
            runtime, data_shape, mean = open_exported_model(args.runtime, prefix, data_shape,
                                                            mean)
        except (OSError, ImportError) as err:
            print('error: %s' % err, file=sys.stderr)
            raise SystemExit(2)
    results = evaluate_net(
        network, args.rec_path, args.num_class, mean,
        data_shape, prefix, args.epoch, ctx=args.ctx, batch_size=args.batch_size,
        path_imglist=args.list_path, nms_thresh=args.nms_thresh, force_nms=args.force_nms,
        nms_topk=args.nms_topk, ovp_thresh=args.overlap_thresh,
        use_difficult=args.use_difficult, class_names=load_class_names(args.class_names),
        metric=args.metric, num_batch=args.num_batch, frequent=args.frequent,
        output_dir=args.output_dir, coco_annotations=args.coco_annotations,
        image_root=args.image_root, label_pad_width=args.label_width, runtime=runtime)
    print(results.get('coco_summary', ''), end='')
    print(results['table'])
    print('%d images, %.1f images/sec; results and plots in %s'
          % (results['data']['num_images'], results['speed']['images_per_sec'] or 0,
             args.output_dir))
    return results


if __name__ == '__main__':
    main()
