"""False alarms of a synthetic-shapes model on real photographs: detections scoring >= 0.5 on
each held-out photo of data/photos/ (none of them shows a shape, so every one is a false
alarm), with the same test graph and NMS settings as demo.py.

    python -m bench.real_photos                                  # the shipped model
    python -m bench.real_photos --prefix output/new/ssd_ --epoch 16
    python -m bench.real_photos --photos train                   # the training photos instead
"""
import argparse
import json
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported (by the imports below)
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
from dataset import photos  # noqa: E402
from detect.shipped import SHIPPED_MODEL, fallback_settings  # noqa: E402
from evaluate.real_photos import (CONFIDENT_SCORE, false_alarms_on_photos,  # noqa: E402
                                  mean_false_alarms)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--network', default=None,
                   help='network (default: the model spec, else %s)' % SHIPPED_MODEL['network'])
    p.add_argument('--data-shape', type=int, default=None,
                   help='input size (default: the model spec, else %d)'
                        % SHIPPED_MODEL['data_shape'])
    p.add_argument('--prefix', default=SHIPPED_MODEL['prefix'],
                   help="checkpoint prefix; ending in '_' appends <network>_<data shape>")
    p.add_argument('--epoch', type=int, default=SHIPPED_MODEL['epoch'],
                   help='checkpoint epoch (default: the newest one)')
    p.add_argument('--thresh', type=float, default=CONFIDENT_SCORE,
                   help='score from which a detection counts as a false alarm')
    p.add_argument('--nms', type=float, default=None,
                   help='NMS IoU threshold (default: the model spec, as demo.py)')
    p.add_argument('--photos', choices=('heldout', 'train'), default='heldout',
                   help='which photos of data/photos/ to run on')
    p.add_argument('--json', default=None, help='also write the counts to this file')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from detect.detector import detector_from_settings
    from symbol import model_io
    flags = dict(network=args.network, data_shape=args.data_shape, nms_thresh=args.nms)
    try:  # the model spec's network, anchors (preset overrides) and NMS, as demo.py
        prefix, _, settings = model_io.open_model(args.prefix, flags, fallback_settings())
        detector = detector_from_settings(prefix, args.epoch, settings)
    except (OSError, ValueError) as err:  # a missing or mismatched model: one line
        print('error: %s' % err, file=sys.stderr)
        return 2
    names = photos.HELD_OUT if args.photos == 'heldout' else photos.TRAIN
    results = false_alarms_on_photos(detector, names, args.thresh)
    print('model %s-%04d, %s photos, detections scoring >= %.2f:'
          % (prefix, detector.epoch, args.photos, args.thresh))
    for name, (count, top) in results.items():
        print('  %-18s %2d   (highest score %.2f)' % (name, count, top))
    mean = mean_false_alarms(results)
    clean = sum(count == 0 for count, _ in results.values())
    print('false alarms per photo %.2f; photos without any: %d of %d'
          % (mean, clean, len(results)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(prefix=prefix, epoch=detector.epoch, thresh=args.thresh,
                           per_photo={k: dict(count=c, top_score=t)
                                      for k, (c, t) in results.items()},
                           false_alarms_per_photo=mean, photos_without=clean), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
