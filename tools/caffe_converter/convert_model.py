"""Convert a Caffe model (deploy .prototxt + .caffemodel) to an MXNet checkpoint.

    python tools/caffe_converter/convert_model.py deploy.prototxt model.caffemodel model/ssd_caffe

writes model/ssd_caffe-symbol.json and model/ssd_caffe-0001.params.  The converted model takes
RGB input named "data"; with the default --swap-rgb the first convolution's input channels
are reordered so a Caffe model trained on BGR images minus (104, 117, 123) expects RGB
images minus (123, 117, 104), the project's default means.  SSD models then run with
``demo.py --deploy`` / ``evaluate.py --deploy`` (--prefix model/ssd_caffe --epoch 1).
"""
import argparse
import logging
import os
import sys

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from tools.caffe_converter.caffe_io import CaffeError  # noqa: E402
from tools.caffe_converter.converter import DEFAULT_EPOCH, convert  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prototxt", help="Caffe deploy network (.prototxt)")
    parser.add_argument("caffemodel", help="Caffe weights (.caffemodel)")
    parser.add_argument("prefix", help="output prefix: PREFIX-symbol.json, PREFIX-%%04d.params")
    parser.add_argument("--epoch", type=int, default=DEFAULT_EPOCH,
                        help="epoch number in the params file name (default %(default)s)")
    parser.add_argument("--swap-rgb", action=argparse.BooleanOptionalAction, default=True,
                        help="reorder the first convolution's input channels so the model "
                             "takes RGB instead of Caffe's BGR (default: on)")
    parser.add_argument("--input-scale", type=float, default=1.0,
                        help="Caffe's transform_param scale (e.g. 0.017 or 1/127.5), folded "
                             "into the first convolution so the model takes mean-subtracted "
                             "pixels without scaling (default %(default)s)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar (default: on)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        model = convert(args.prototxt, args.caffemodel, swap_rgb=args.swap_rgb,
                        input_scale=args.input_scale, progress=args.progress)
        out_dir = os.path.dirname(os.path.abspath(args.prefix))
        os.makedirs(out_dir, exist_ok=True)
        paths = model.save(args.prefix, args.epoch)
    except CaffeError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    print("saved %s and %s (input 'data' %s)" % (paths + (model.input_shapes["data"],)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
