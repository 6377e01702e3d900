#!/usr/bin/env python
"""Pre-flight report of a detection dataset, its anchor coverage for a network, and fitted
anchors (--fit-anchors) as a --preset-overrides JSON for train.py.

Examples (from the repository root):
  python tools/analyze_dataset.py --rec data/train.rec --num-class 20 --network vgg16_reduced
  python tools/analyze_dataset.py --lst data/synthetic/train.lst --class-names synthetic \\
      --network mobilenet_0.25 --data-shape 224 --fit-anchors
  python tools/analyze_dataset.py --dataset voc-folder --root my_xmls --strict

Writes <output-dir>/report.json (every number and problem), boxes.png, coverage.png,
classes.png and, with --fit-anchors, fitted_anchors.json; exits with 1 under --strict when
a problem was found.
"""
import argparse
import json
import logging
import os
import sys

import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

import numpy as np  # noqa: E402

from dataset import analysis, analysis_figures, anchors  # noqa: E402
from dataset.factory import DATASETS, DEFAULT_ROOTS, load_imdb  # noqa: E402
from dataset.imdb import load_class_names  # noqa: E402
from symbol.common import as_pair  # noqa: E402
from symbol.symbol_factory import known_networks  # noqa: E402
from train.cli import data_shape, json_object  # noqa: E402

STRICT_EXIT_CODE = 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--rec', help='prepared .rec (labels from the record headers)')
    source.add_argument('--lst', help='prepared .lst')
    source.add_argument('--dataset', choices=DATASETS, help='read a dataset with its reader')
    parser.add_argument('--root', help='--dataset root (default: %s)'
                        % ', '.join('%s=%s' % kv for kv in DEFAULT_ROOTS.items()))
    parser.add_argument('--set', dest='image_set', default='train',
                        help='--dataset image set(s), comma separated')
    parser.add_argument('--year', default='2007,2012', help='VOC years (--dataset pascal)')
    parser.add_argument('--image-root', help='--lst: folder its image paths are relative to '
                        '(default: the .lst folder); images found there give pixel sizes')
    parser.add_argument('--image-sizes', action=argparse.BooleanOptionalAction, default=True,
                        help="--rec/--lst: read every image's size in pixels (header only)")
    parser.add_argument('--class-names', help="'a,b,c', a names file or a dataset/names entry")
    parser.add_argument('--num-class', type=int,
                        help='classes of the network (default: the number of class names)')
    parser.add_argument('--label-width', type=int, default=-1,
                        help='check against this train.py --label-width (-1: none)')
    parser.add_argument('--network', choices=known_networks(),
                        help='network preset whose anchors are checked (omit: data report only)')
    parser.add_argument('--data-shape', type=data_shape, default=300,
                        help='network input SIZE or HEIGHT,WIDTH')
    parser.add_argument('--preset-overrides', type=json_object,
                        help='preset fields as given to train.py (e.g. earlier fitted anchors)')
    parser.add_argument('--fit-anchors', action='store_true',
                        help='search sizes and ratios per layer; write fitted_anchors.json')
    parser.add_argument('--fit-extra-ratios', type=int, default=0,
                        help='add this many anchor ratios per layer before fitting (changes '
                             'the prediction heads: their weights no longer load from a '
                             'checkpoint of the preset)')
    parser.add_argument('--fit-max-objects', type=int, default=anchors.FIT_MAX_OBJECTS,
                        help='objects (a random subset) the anchor search runs on')
    parser.add_argument('--output-dir', default=os.path.join('output', 'analysis'),
                        help='where report.json, the figures and fitted_anchors.json go')
    parser.add_argument('--no-figures', dest='figures', action='store_false',
                        help='skip the PNG figures')
    parser.add_argument('--strict', action='store_true',
                        help='exit with %d when any problem is found' % STRICT_EXIT_CODE)
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction, default=True,
                        help='progress bars while reading')
    args = parser.parse_args(argv)
    if args.fit_anchors and not args.network:
        parser.error('--fit-anchors needs --network')
    return args


def read_labels(args):
    """(entries, problems found while reading, class names or None)."""
    names = load_class_names(args.class_names) if args.class_names else None
    if args.rec:
        return analysis.entries_from_rec(args.rec, args.image_sizes, args.progress) + (names,)
    if args.lst:
        if not os.path.isfile(args.lst):
            raise FileNotFoundError('--lst %s: file not found' % args.lst)
        return analysis.entries_from_lst(args.lst, args.image_root, args.image_sizes,
                                         args.progress) + (names,)
    root = args.root or DEFAULT_ROOTS[args.dataset]
    imdb = load_imdb(args.dataset, args.image_set, root, year=args.year,
                     class_names=args.class_names, true_negative_images=True,
                     synthetic_options=existing_synthetic_options(root))
    return analysis.entries_from_imdb(imdb) + (imdb.classes,)


def existing_synthetic_options(root):
    """The settings a synthetic tree under `root` was drawn with, so that reading it does not
    redraw it with the defaults (None: draw one with the defaults)."""
    try:
        with open(os.path.join(root, 'synthetic.json')) as f:
            manifest = json.load(f)
        return {key: manifest[key] for key in ('num_train', 'num_val', 'seed', 'data_shape')}
    except (OSError, ValueError, KeyError):
        return None


def anchor_analysis(args, classes, boxes, class_names, shape):
    """Coverage of the preset's anchors and, with --fit-anchors, of fitted ones."""
    overrides = args.preset_overrides or {}
    _, layers = anchors.anchor_layers(args.network, shape, **overrides)
    result = {'network': args.network, 'preset_overrides': overrides,
              'coverage': anchors.coverage_report(classes, boxes, layers, shape, class_names)}
    result['anchor_shapes_px'] = [(layer.name, anchors.anchor_shapes_px(layer, shape))
                                  for layer in layers]
    if args.fit_anchors:
        if args.fit_extra_ratios < 0:
            raise ValueError('--fit-extra-ratios must be >= 0, got %d' % args.fit_extra_ratios)
        fitted = anchors.fit_anchors(boxes, layers, max_objects=args.fit_max_objects,
                                     extra_ratios=args.fit_extra_ratios)
        fitted_overrides = dict(overrides, **anchors.preset_overrides(fitted))
        # measured through the preset, as train.py will build it from the written JSON
        _, fitted_layers = anchors.anchor_layers(args.network, shape, **fitted_overrides)
        result['fitted_overrides'] = fitted_overrides
        result['fitted_coverage'] = anchors.coverage_report(classes, boxes, fitted_layers,
                                                            shape, class_names)
        result['fitted_shapes_px'] = [(layer.name, anchors.anchor_shapes_px(layer, shape))
                                      for layer in fitted_layers]
    return result


def write_figures(out_dir, report, anchor_result, boxes, shape):
    geometry = analysis.box_geometry(boxes, shape)
    paths = [analysis_figures.plot_class_histogram(os.path.join(out_dir, 'classes.png'),
                                                   report['objects_per_class'])]
    shapes = anchor_result['anchor_shapes_px'] if anchor_result else []
    fitted_shapes = anchor_result.get('fitted_shapes_px') if anchor_result else None
    paths.append(analysis_figures.plot_box_shapes(
        os.path.join(out_dir, 'boxes.png'), geometry['width_px'], geometry['height_px'],
        shapes, shape, fitted_shapes))
    if anchor_result:
        paths.append(analysis_figures.plot_coverage_by_size(
            os.path.join(out_dir, 'coverage.png'), anchor_result['coverage'],
            anchor_result.get('fitted_coverage')))
    return paths


def json_ready(anchor_result):
    return {key: ([(name, shapes.round(2).tolist()) for name, shapes in value]
                  if key.endswith('_shapes_px') else value)
            for key, value in anchor_result.items()}


def analyze(args):
    """Run the analysis; returns (report dict as written to report.json, text lines)."""
    shape = as_pair(args.data_shape)
    entries, problems, class_names = read_labels(args)
    num_class = args.num_class if args.num_class is not None else (
        len(class_names) if class_names else None)
    report = analysis.dataset_report(entries, problems, class_names, num_class, shape,
                                     args.label_width)
    report['num_class'] = num_class
    lines = [analysis.format_report(report)]
    if num_class is None:
        lines.append('class ids not checked: give --num-class or --class-names')
    classes, boxes, _ = analysis.usable_objects(entries)
    anchor_result = None
    if args.network:
        anchor_result = anchor_analysis(args, classes, boxes, class_names, shape)
        lines.append(anchors.format_coverage(anchor_result['coverage'],
                                             '%s anchors' % args.network))
    os.makedirs(args.output_dir, exist_ok=True)
    if anchor_result and 'fitted_overrides' in anchor_result:
        fitted_path = os.path.join(args.output_dir, 'fitted_anchors.json')
        with open(fitted_path, 'w') as f:
            json.dump(anchor_result['fitted_overrides'], f)
        lines += [anchors.format_coverage(anchor_result['fitted_coverage'], 'fitted anchors'),
                  'fitted anchors: %s; train with --preset-overrides "$(cat %s)"'
                  % (fitted_path, fitted_path)]
    if args.figures:
        figures = write_figures(args.output_dir, report, anchor_result, boxes, shape)
        lines.append('figures: %s' % ', '.join(figures))
    if anchor_result:
        report['anchors'] = json_ready(anchor_result)
    report_path = os.path.join(args.output_dir, 'report.json')
    with open(report_path, 'w') as f:
        json.dump(report, f, indent=1, default=_json_number)
    lines.append('every number and problem: %s' % report_path)
    return report, lines


def _json_number(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError('not JSON serialisable: %r' % (value,))


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    try:
        report, lines = analyze(args)
    except (ValueError, TypeError, OSError) as err:   # bad input: one line, no traceback
        print('error: %s' % err, file=sys.stderr)
        return 2
    print('\n'.join(lines))
    if args.strict and report['problems']:
        print('--strict: %d problem(s) found' % len(report['problems']), file=sys.stderr)
        return STRICT_EXIT_CODE
    return 0


if __name__ == '__main__':
    sys.exit(main())
