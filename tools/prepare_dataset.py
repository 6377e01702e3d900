#!/usr/bin/env python
"""Prepare a detection dataset for training: write the .lst and pack .rec/.idx.

Examples (from the repository root; --dataset pascal is the default):
  python tools/prepare_dataset.py --year 2007,2012 --set trainval --target data/train.lst
  python tools/prepare_dataset.py --year 2007 --set test --target data/val.lst --no-shuffle
  python tools/prepare_dataset.py --dataset coco --set train2017 --target data/coco_train.lst
  python tools/prepare_dataset.py --dataset synthetic --set train --target data/synthetic/train.lst
"""
import argparse
import logging
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

from config.cli import data_shape  # noqa: E402
from dataset.factory import DATASETS, DEFAULT_ROOTS, load_imdb  # noqa: E402
from dataset.prepare import JPEG_QUALITY, PrepareError, prepare_imdb  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=DATASETS, default='pascal')
    parser.add_argument('--year', default='2007,2012',
                        help='VOC years, comma separated (pascal only)')
    parser.add_argument('--set', dest='image_set', default='trainval',
                        help='image set(s), comma separated: trainval / test / train2017 / ...')
    parser.add_argument('--target', default=None,
                        help='output .lst path; .rec and .idx go beside it '
                             '(default data/<set>.lst)')
    parser.add_argument('--root', default=None,
                        help='dataset root (default: %s)'
                             % ', '.join('%s=%s' % kv for kv in DEFAULT_ROOTS.items()))
    parser.add_argument('--class-names', default=None,
                        help='comma separated names or a names file '
                             '(default: the dataset\'s own list)')
    parser.add_argument('--shuffle', action=argparse.BooleanOptionalAction, default=True,
                        help='shuffle the image order (seeded by --seed)')
    parser.add_argument('--true-negative', action=argparse.BooleanOptionalAction, default=False,
                        help='keep images without (known) objects as negative examples')
    parser.add_argument('--seed', type=int, default=0, help='shuffle seed; synthetic data seed')
    parser.add_argument('--num-thread', type=int, default=os.cpu_count() or 1,
                        help='threads decoding/encoding images')
    parser.add_argument('--resize', type=int, default=0,
                        help='rescale so the shorter side is this many pixels '
                             '(0: store JPEGs as they are)')
    parser.add_argument('--quality', type=int, default=JPEG_QUALITY,
                        help='JPEG quality when re-encoding')
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction, default=True,
                        help='show progress bars')
    synthetic = parser.add_argument_group('synthetic dataset (generated into --root if missing)')
    synthetic.add_argument('--num-train', type=int, default=1000, help='images in the train set')
    synthetic.add_argument('--num-val', type=int, default=200, help='images in the val set')
    synthetic.add_argument('--data-shape', type=data_shape, default=300,
                           help='approximate image SIZE or HEIGHT,WIDTH')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # file names that are not UTF-8 are printed as their bytes (as ls does), not a UnicodeError
    sys.stdout.reconfigure(errors='surrogateescape')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    root = args.root or os.path.join(ROOT, DEFAULT_ROOTS[args.dataset])
    target = args.target or os.path.join(ROOT, 'data', args.image_set.replace(',', '_') + '.lst')
    imdb = load_imdb(args.dataset, args.image_set, root, year=args.year,
                     class_names=args.class_names, true_negative_images=args.true_negative,
                     synthetic_options=dict(num_train=args.num_train, num_val=args.num_val,
                                            seed=args.seed, data_shape=args.data_shape,
                                            progress=args.progress))
    try:
        result = prepare_imdb(imdb, target, shuffle=args.shuffle, seed=args.seed,
                              num_threads=args.num_thread, resize=args.resize,
                              quality=args.quality, progress=args.progress)
    except PrepareError as err:
        sys.exit('error: %s' % err)
    print(result.summary())
    print('classes (%d): %s' % (len(imdb.classes), ','.join(imdb.classes)))


if __name__ == '__main__':
    main()
