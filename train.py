"""Train an SSD detector.

    python train.py --network vgg16_reduced --train-path data/train.rec --val-path data/val.rec
    python train.py --resume last ...        # continue the newest checkpoint of --prefix
    python -m bench.train                    # the shipped demo model's recipe (model/README.md)

Distributed (MXNet parameter server), see tools/launch.py:
    python tools/launch.py -n 2 -s 1 -- python train.py --kv-store dist_sync ...

``python train.py --help`` lists every flag.
"""
import sys

from config.threads import set_default_threads

set_default_threads()

from train.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
