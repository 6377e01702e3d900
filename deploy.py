"""Export a trained SSD checkpoint as a deploy model: the graph up to the detection output
(no training losses) and the parameters it uses, as <dir>/deploy_<name>-symbol.json and
-<epoch>.params.

    python deploy.py       # the shipped model -> model/deploy_ssd_mobilenet_0.25_224-*
    python deploy.py --network vgg16_reduced --data-shape 300 --num-class 20 --epoch 240
    python deploy.py --format onnx   # -> model/deploy_ssd_mobilenet_0.25_224.onnx

By default (--portable) the graph uses MXNet's built-in _contrib_MultiBox* operators, so it
runs on stock MXNet in any language binding or model server, without this project.
"""
import argparse
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported (by the imports below)

from detect.cli import BOOL, HelpFormatter  # noqa: E402
from detect.onnx_export import add_export_arguments  # noqa: E402
from detect.shipped import SHIPPED_MODEL  # noqa: E402


def parse_args(argv=None):
    from dataset.imdb import load_class_names
    from evaluate.options import parse_data_shape
    shipped = SHIPPED_MODEL
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--network', default=shipped['network'], help='network the model was built with')
    p.add_argument('--epoch', type=int, default=shipped['epoch'],
                   help='checkpoint epoch (default: the newest one with this prefix)')
    p.add_argument('--prefix', default=shipped['prefix'],
                   help="checkpoint prefix; ending in '_' appends <network>_<data shape>")
    p.add_argument('--data-shape', type=parse_data_shape, default=shipped['data_shape'],
                   help='network input "S" or "H,W"')
    p.add_argument('--num-class', dest='num_classes', type=int,
                   default=len(load_class_names(shipped['class_names'])),
                   help='classes, without background')
    p.add_argument('--nms', dest='nms_thresh', type=float, default=0.45, help='NMS threshold')
    p.add_argument('--topk', dest='nms_topk', type=int, default=400,
                   help='detections kept before NMS')
    p.add_argument('--force-nms', action=BOOL, default=True,
                   help='suppress overlapping boxes of different classes too')
    p.add_argument('--portable', action=BOOL, default=True,
                   help="MXNet's built-in _contrib_MultiBox* operators (runs on stock MXNet); "
                        "--no-portable keeps this project's operators")
    p.add_argument('--output-prefix', default=None,
                   help='where to write (default: deploy_ in front of the checkpoint name)')
    add_export_arguments(p)
    return p.parse_args(argv)


def export_onnx_model(args, prefix, epoch):
    from dataset.imdb import load_class_names
    from detect.onnx_export import OPSET, export_onnx_checkpoint, onnx_file
    names = load_class_names(args.class_names or SHIPPED_MODEL['class_names'])
    if args.class_names is None and len(names) != args.num_classes:
        names = None  # the shipped names do not fit this model: write none
    path = export_onnx_checkpoint(
        None if args.deploy else args.network, prefix, epoch, args.data_shape, args.num_classes,
        args.nms_thresh, args.force_nms, args.nms_topk, raw=args.onnx_raw, class_names=names,
        mean_pixels=args.mean,
        path=args.output_prefix and onnx_file(args.output_prefix, args.onnx_raw))
    print('ONNX model (opset %d%s): %s' % (OPSET, ', raw outputs' if args.onnx_raw else '', path))
    if not args.onnx_raw:
        print('run it with: python demo.py --runtime onnxruntime --prefix %s' % path)
    return 0


def main(argv=None):
    from detect.detector import resolve_epoch
    from detect.export import export_deploy_model
    from evaluate.evaluate_net import expand_prefix
    args = parse_args(argv)
    prefix = expand_prefix(args.prefix, args.network, args.data_shape)
    try:
        epoch = resolve_epoch(prefix, args.epoch)
        if args.format == 'onnx' or args.onnx_raw:
            return export_onnx_model(args, prefix, epoch)
        files = export_deploy_model(args.network, prefix, epoch, args.data_shape,
                                    args.num_classes, nms_thresh=args.nms_thresh,
                                    force_nms=args.force_nms, nms_topk=args.nms_topk,
                                    portable=args.portable, output_prefix=args.output_prefix)
    except (OSError, ValueError, ImportError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print('deploy model (%s operators): %s, %s'
          % ('stock MXNet' if args.portable else "this project's", files[0], files[1]))
    print('run it with: python demo.py --deploy --prefix %s --epoch %d --data-shape %s'
          % (files[0][:-len('-symbol.json')], epoch,
             ','.join(map(str, args.data_shape)) if isinstance(args.data_shape, tuple)
             else args.data_shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
