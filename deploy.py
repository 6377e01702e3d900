"""Export a trained SSD checkpoint as a deploy model: the graph up to the detection output
(no training losses), the parameters it uses and the model spec, as
<dir>/deploy_<name>-symbol.json, -<epoch>.params and -model.json.

    python deploy.py                                   # the shipped model -> model/deploy_ssd_...
    python deploy.py --prefix output/exp1/ssd --epoch 240     # settings from its model spec
    python deploy.py --network vgg16_reduced --data-shape 300 --num-class 20 --prefix old/ssd_
    python deploy.py --format onnx        # -> model/deploy_ssd_mobilenet_0.25_224.onnx

By default (--portable) the graph uses MXNet's built-in _contrib_MultiBox* operators, so it
runs on stock MXNet in any language binding or model server, without this project.
"""
import argparse
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported (by the imports below)

from config import cli  # noqa: E402
from detect.shipped import SHIPPED_MODEL, fallback_settings  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=cli.HelpFormatter)
    cli.add_model_args(p, SHIPPED_MODEL['prefix'])
    cli.add_nms_args(p)
    p.add_argument('--portable', action=cli.BOOL, default=True,
                   help="MXNet's built-in _contrib_MultiBox* operators (runs on stock MXNet); "
                        "--no-portable keeps this project's operators")
    p.add_argument('--output-prefix', default=None,
                   help='where to write (default: deploy_ in front of the checkpoint name); '
                        'never the checkpoint itself')
    cli.add_export_args(p)
    return p.parse_args(argv)


def export_onnx_model(args, prefix, epoch, spec, settings):
    """deploy.py --format onnx: the whole detector as one .onnx, the model spec inside."""
    from detect.onnx_export import OPSET, export_onnx_checkpoint
    from symbol import model_io
    if args.deploy or settings['deploy']:
        settings = dict(settings, network=None)   # the checkpoint's own graph
    path = args.output_prefix and model_io.onnx_file(args.output_prefix, args.onnx_raw)
    path = export_onnx_checkpoint(settings, prefix, epoch, spec, raw=args.onnx_raw, path=path)
    print('ONNX model (opset %d%s): %s' % (OPSET, ', raw outputs' if args.onnx_raw else '', path))
    if not args.onnx_raw:
        print('run it with: python demo.py --runtime onnxruntime --prefix %s' % path)
    return 0


@cli.command
def main(argv=None):
    from detect.export import export_deploy_model
    from symbol import model_io
    args = parse_args(argv)
    prefix, spec, settings = cli.open_model(args, fallback_settings())
    epoch = model_io.resolve_epoch(prefix, args.epoch)
    if args.format == 'onnx' or args.onnx_raw:
        return export_onnx_model(args, prefix, epoch, spec, settings)
    files = export_deploy_model(settings, prefix, epoch, portable=args.portable,
                                output_prefix=args.output_prefix, spec=spec)
    print('deploy model (%s operators): %s, %s'
          % ('stock MXNet' if args.portable else "this project's", files[0], files[1]))
    print('run it with: python demo.py --deploy --prefix %s --epoch %d'
          % (files[0][:-len('-symbol.json')], epoch))
    return 0


if __name__ == '__main__':
    sys.exit(main())
