"""Convert a Caffe .prototxt to an MXNet symbol (JSON), without weights.

    python tools/caffe_converter/convert_symbol.py deploy.prototxt [--output net-symbol.json]

prints the symbol's JSON, or saves it with --output.
"""
import argparse
import sys

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from tools.caffe_converter.caffe_io import CaffeError  # noqa: E402
from tools.caffe_converter.converter import convert  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prototxt", help="Caffe network (.prototxt)")
    parser.add_argument("--output", help="save the symbol to this .json file instead of "
                                         "printing it")
    args = parser.parse_args(argv)
    try:
        model = convert(args.prototxt)
    except CaffeError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    if args.output:
        model.symbol.save(args.output)
        print("saved %s" % args.output)
    else:
        print(model.symbol.tojson())
    return 0


if __name__ == "__main__":
    sys.exit(main())
