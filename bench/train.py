"""Synthetic training benchmark: prepare the synthetic shapes dataset, train mobilenet_0.25 from
scratch with the shipped demo model's recipe, and report time per epoch, images/s and the
final validation mAP (VOC07 11-point) against the goal (mAP >= 0.9 within 15 minutes).

    python -m bench.train                       # the demo model's recipe
    python -m bench.train --epochs 5            # a shorter run
    python -m bench.train --export model        # also write the demo model files into model/
    python -m bench.train --synthetic-settings '{}'  # without the real photographs of the recipe

The training command it runs is printed first; model/README.md quotes it.  Timings depend
on what else the machine runs: the load average before and after is printed with them.
"""
import argparse
import json
import os
import shlex
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from config.threads import set_default_threads  # noqa: E402

set_default_threads()
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

from config.cli import json_object  # noqa: E402
from train.history import curves_path  # noqa: E402
from train.recipes import (DEMO, check_inference_model, export_inference_model,  # noqa: E402
                           inference_prefix, recipe_argv)

GOAL_MAP = 0.9
GOAL_MINUTES = 15.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--data-dir', default=os.path.join('data', 'synthetic_%d' % DEMO.data_shape),
                   help='where the synthetic dataset is generated (kept for later runs)')
    p.add_argument('--prefix', default=os.path.join('output', 'bench', 'ssd_'),
                   help="checkpoint prefix ('_' at the end appends network and shape)")
    p.add_argument('--epochs', type=int, default=DEMO.epochs, help='training epochs')
    p.add_argument('--num-train', type=int, default=DEMO.num_train,
                   help='synthetic training images (a shorter pilot run: fewer)')
    p.add_argument('--synthetic-settings', type=json_object, default=DEMO.synthetic_settings,
                   help='JSON object overriding dataset.synthetic.SETTINGS (e.g. the photo_* '
                        'fractions)')
    p.add_argument('--export', metavar='DIR',
                   help='write the inference model (symbol, params) into DIR afterwards')
    p.add_argument('--progress', action=argparse.BooleanOptionalAction, default=True,
                   help='progress bars while generating the dataset')
    args = p.parse_args(argv)
    from dataset.synthetic import settings_with
    try:
        settings_with(args.synthetic_settings)
    except ValueError as err:
        p.error('--synthetic-settings: %s' % err)
    return args


def prepare_data(data_dir, num_train, settings, progress):
    from dataset import synthetic
    tic = time.time()
    info = synthetic.prepare(data_dir, num_train=num_train, num_val=DEMO.num_val,
                             seed=DEMO.data_seed, data_shape=DEMO.data_shape, progress=progress,
                             settings=settings)
    return info, time.time() - tic


def load_average():
    return ' '.join('%.2f' % v for v in os.getloadavg())


def report(summary, wall_seconds, loads):
    epochs = summary['epochs']
    seconds = [e['seconds'] for e in epochs]
    final = epochs[-1]
    lines = [
        'network %s, input %d, %d train / %d val images, %d epochs' % (
            DEMO.network, DEMO.data_shape, summary['num_train'], DEMO.num_val, len(epochs)),
        'training wall time   %.1f s (%.1f min; goal <= %.0f min)' % (
            wall_seconds, wall_seconds / 60, GOAL_MINUTES),
        'time per epoch       %.1f s (mean of the epochs\' training passes)' % (
            sum(seconds) / len(seconds)),
        'training speed       %.1f images/s (mean)' % (
            sum(e['images_per_second'] for e in epochs) / len(epochs)),
        'final mAP (VOC07)    %.4f (goal >= %.2f)' % (final['mAP'], GOAL_MAP),
        'per class            %s' % ', '.join('%s %.3f' % (k[3:], v) for k, v in final.items()
                                              if k.startswith('AP ')),
        'load average (1/5/15 min) before: %s, after: %s (2-core machine)' % loads,
        'goal met: %s' % ('yes' if final['mAP'] >= GOAL_MAP and
                          wall_seconds <= GOAL_MINUTES * 60 else 'no'),
    ]
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    info, prepare_seconds = prepare_data(args.data_dir, args.num_train,
                                         args.synthetic_settings, args.progress)
    print('dataset ready in %.1f s: %s' % (prepare_seconds, info['root']), flush=True)
    # a benchmark run starts afresh each time: replace the previous run's checkpoints
    argv = recipe_argv(DEMO, info, args.prefix, args.epochs) + ['--overwrite']
    print('training: python train.py %s' % ' '.join(shlex.quote(a) for a in argv), flush=True)

    from train.cli import options_from_args, parse_args as parse_train_args
    from train.train_net import train_net
    import logging
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    load_before = load_average()
    tic = time.time()
    summary = dict(train_net(options_from_args(parse_train_args(argv))),
                   num_train=info['num_train'])
    wall_seconds = time.time() - tic
    print('\n' + report(summary, wall_seconds, (load_before, load_average())))
    if args.export:
        files = export_inference_model(DEMO, summary['prefix'], args.epochs, args.export)
        check_inference_model(inference_prefix(args.export, DEMO), args.epochs, DEMO.data_shape)
        curves = inference_prefix(args.export, DEMO) + '-curves.png'
        shutil.copyfile(curves_path(summary['prefix']), curves)
        print('exported (and loaded back): %s' % ', '.join(files + [curves]))
    with open(summary['prefix'] + '-bench.json', 'w') as f:
        json.dump({'wall_seconds': wall_seconds, 'prepare_seconds': prepare_seconds,
                   'load_before': load_before, 'load_after': load_average(),
                   'epochs': summary['epochs']}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
