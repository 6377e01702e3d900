"""Know your data before training: what a detection set holds and what is wrong with it.

The labels are read from a prepared ``.lst`` or ``.rec`` (`entries_from_lst`,
`entries_from_rec`) or from any reader of this package (`entries_from_imdb`), then
`check_entries` finds the problems that make training fail late or silently (class ids past
``--num-class``, degenerate and out-of-range boxes, boxes too small to see after resizing) and
`dataset_report` gathers the numbers: images, objects per class, objects per image and the
label width they need, box size and aspect distributions.  Every problem names its image and
where it sits (``file:line``, ``file record N``).

`preflight_check` is the cheap part for ``train.py``: it reads only the record headers and
raises `DatasetError` with the same messages before the first epoch.
"""
import io
import os
import re
from collections import Counter, namedtuple

import mxnet as mx
import numpy as np
from PIL import Image
from tqdm import tqdm

from .imdb import BOX_OUTSIDE_TOLERANCE, HEADER_WIDTH, OBJECT_WIDTH

# After resizing to the network input, a box narrower or lower than this cannot be told from
# noise by a stride-8 feature map: its objects are reported as tiny.
TINY_BOX_PIXELS = 4
# How many problems a text report or an exception message lists one by one.
PROBLEMS_LISTED = 10
PERCENTILES = (0, 5, 25, 50, 75, 95, 100)

# Problem kinds found on the labels themselves (readers report their own kinds, see imdb.py).
CLASS_OUT_OF_RANGE = 'class id outside --num-class'
DEGENERATE_BOX = 'degenerate box (min >= max or not finite)'
OUT_OF_RANGE_BOX = 'box outside the image'
TINY_BOX = 'tiny box (< %d px after resize)' % TINY_BOX_PIXELS
LABEL_TOO_WIDE = 'label wider than --label-width'
MALFORMED_LABEL = 'malformed label'

Entry = namedtuple('Entry', ['image', 'where', 'rows', 'size'])
Entry.__doc__ = """One image: `image` (its path or id), `where` its labels are (``file:line``,
``file record N``), `rows` float64 (n, >= 5) [cls, xmin, ymin, xmax, ymax, ...] normalised,
without padding rows, and `size` (width, height) in pixels or None when unknown."""

Problem = namedtuple('Problem', ['kind', 'where', 'image', 'detail'])


class DatasetError(ValueError):
    """The labels cannot train the network as configured; the message lists the problems."""


def format_problem(problem):
    return '%s: %s: %s (image %s)' % (problem.where, problem.kind, problem.detail, problem.image)


# ----------------------------------------------------------------------------- reading labels

def label_rows(values):
    """Object rows of a flat detection label [header_width, object_width, ..., objects...] (a
    .lst line's label fields or a record header); padding rows (all -1) are dropped."""
    values = np.asarray(values, np.float64)
    if len(values) < 2 or not np.all(np.isfinite(values[:2])):
        raise ValueError('label %s does not start with [header_width, object_width] as '
                         '[2, 6, objects...] does' % _fmt_box(values[:2]))
    header, width = int(values[0]), int(values[1])
    objects = values[header:] if header >= 2 else values[:0]
    if header < 2 or width < 5 or len(objects) % width:
        raise ValueError('%d label values after a header of %g do not form objects of width %g'
                         % (len(objects), values[0], values[1]))
    rows = objects.reshape(-1, width)
    return rows[~np.all(rows == -1, axis=1)]


def entries_from_lst(path, image_root=None, read_sizes=False, progress=False):
    """Entries of a detection .lst, one per line; `read_sizes` reads each image's size in
    pixels (paths are relative to `image_root`, default the .lst's folder)."""
    image_root = os.path.dirname(os.path.abspath(path)) if image_root is None else image_root
    entries, problems = [], []
    with open(path) as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(tqdm(lines, desc='reading %s' % os.path.basename(path),
                                       unit='line', disable=not progress), 1):
        if not line.strip():
            continue
        where = '%s:%d' % (path, lineno)
        fields = line.split('\t')
        try:
            if len(fields) < 4:
                raise ValueError('expected "idx<TAB>2<TAB>6<TAB>labels...<TAB>path"')
            try:
                values = [float(v) for v in fields[1:-1]]
            except ValueError as err:
                raise ValueError('label field is not a number (%s)' % err)
            rows = label_rows(values)
        except ValueError as err:
            problems.append(Problem(MALFORMED_LABEL, where, fields[-1], str(err)))
            continue
        image = fields[-1]
        size = image_size(os.path.join(image_root, image)) if read_sizes else None
        entries.append(Entry(image, where, rows, size))
    return entries, problems


def image_size(source):
    """(width, height) of an image file or bytes from its header alone (Pillow, which
    matplotlib brings, reads no pixels for this), or None when it cannot be read."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def record_headers(path_imgrec, read_sizes=False, progress=False):
    """(position, record id, label vector, image (width, height) or None) of every record."""
    reader = mx.recordio.MXRecordIO(path_imgrec, 'r')
    try:
        bar = tqdm(desc='reading %s' % os.path.basename(path_imgrec), unit='rec',
                   disable=not progress)
        for position, item in enumerate(iter(lambda: _read_record(reader, path_imgrec), None)):
            header, data = mx.recordio.unpack(item)
            size = image_size(data) if read_sizes else None
            bar.update()
            yield position, int(header.id), np.atleast_1d(header.label), size
        bar.close()
    finally:
        reader.close()


def _read_record(reader, path_imgrec):
    try:
        return reader.read()
    except mx.base.MXNetError as err:   # its message is a C++ stack trace; keep the reason
        reason = str(err).strip().splitlines()[-1].split('Check failed: ')[-1]
        raise ValueError('%s: not a readable RecordIO file (%s)' % (path_imgrec, reason))


def entries_from_rec(path_imgrec, read_sizes=True, progress=False):
    """Entries of a .rec packed with detection labels; `read_sizes` reads each image's size."""
    if not os.path.isfile(path_imgrec):
        raise FileNotFoundError('record file not found: %s' % path_imgrec)
    entries, problems = [], []
    for position, record_id, label, size in record_headers(path_imgrec, read_sizes, progress):
        where = '%s record %d' % (path_imgrec, position)
        image = 'id %d' % record_id
        try:
            entries.append(Entry(image, where, label_rows(label), size))
        except ValueError as err:
            problems.append(Problem(MALFORMED_LABEL, where, image, str(err)))
    return entries, problems


def entries_from_imdb(imdb):
    """Entries of an image database (any reader of this package), plus what the reader
    rejected while loading it, each located in its annotation file where possible."""
    # records do not keep their annotation file: the reader's image id locates them
    entries = [Entry(r.path, str(r.index), r.label.astype(np.float64), r.size)
               for r in imdb.records]
    problems = [Problem(issue.kind, annotation_location(issue.source, issue.detail),
                        os.path.splitext(os.path.basename(issue.source))[0], issue.detail or '-')
                for issue in imdb.issues]
    return entries, problems


# imdb.Imdb words its details "object <k> (...)" and "'<name>' not in <n> known classes".
_OBJECT_DETAIL = re.compile(r'object (\d+) ')
_CLASS_DETAIL = re.compile(r"'(.*)' not in \d+ known classes")


def annotation_location(source, detail):
    """``source:line`` of the object a reader's issue is about, for XML annotations (the
    k-th <object> element, or the <name> of an unknown class); else `source` itself."""
    if not source.endswith('.xml') or not os.path.isfile(source):
        return source
    with open(source, errors='replace') as f:
        lines = f.read().splitlines()
    obj, cls = _OBJECT_DETAIL.match(detail or ''), _CLASS_DETAIL.match(detail or '')
    if obj:
        starts = [n for n, line in enumerate(lines, 1) for _ in re.finditer(r'<object[\s>]', line)]
        if int(obj.group(1)) < len(starts):
            return '%s:%d' % (source, starts[int(obj.group(1))])
    elif cls:
        pattern = re.compile(r'<name>\s*%s\s*</name>' % re.escape(cls.group(1)))
        for n, line in enumerate(lines, 1):
            if pattern.search(line):
                return '%s:%d' % (source, n)
    return source


# ----------------------------------------------------------------------------- finding problems

def check_entries(entries, num_class=None, data_shape=None, label_width=None):
    """Problems of the labels: class ids outside [0, num_class), degenerate and out-of-range
    boxes, boxes under `TINY_BOX_PIXELS` after resizing to `data_shape` (height, width), and
    images with more objects than `label_width` holds.  None skips that check."""
    problems = []
    for entry in entries:
        problems += _row_problems(entry, num_class, data_shape)
        needed = HEADER_WIDTH + OBJECT_WIDTH * len(entry.rows)
        if label_width is not None and label_width > 0 and needed > label_width:
            problems.append(Problem(LABEL_TOO_WIDE, entry.where, entry.image,
                                    '%d objects need a label width of %d, --label-width is %d'
                                    % (len(entry.rows), needed, label_width)))
    return problems


def _row_problems(entry, num_class, data_shape):
    found = []
    for k, row in enumerate(entry.rows):
        what = 'object %d' % k
        cls, box = row[0], row[1:5]
        if num_class is not None and not (is_class_id(cls) and 0 <= cls < num_class):
            found.append(Problem(CLASS_OUT_OF_RANGE, entry.where, entry.image,
                                 '%s has class id %g, --num-class %d allows 0..%d'
                                 % (what, cls, num_class, num_class - 1)))
        if not np.all(np.isfinite(box)) or box[0] >= box[2] or box[1] >= box[3]:
            found.append(Problem(DEGENERATE_BOX, entry.where, entry.image,
                                 '%s box %s' % (what, _fmt_box(box))))
            continue
        if box.min() < -BOX_OUTSIDE_TOLERANCE or box.max() > 1 + BOX_OUTSIDE_TOLERANCE:
            found.append(Problem(OUT_OF_RANGE_BOX, entry.where, entry.image,
                                 '%s normalised box %s is outside [0, 1]' % (what, _fmt_box(box))))
            continue
        if data_shape is not None:
            width_px = (box[2] - box[0]) * data_shape[1]
            height_px = (box[3] - box[1]) * data_shape[0]
            if min(width_px, height_px) < TINY_BOX_PIXELS:
                found.append(Problem(TINY_BOX, entry.where, entry.image,
                                     '%s is %.1f x %.1f px at the %dx%d input'
                                     % (what, width_px, height_px, data_shape[1], data_shape[0])))
    return found


def is_class_id(value):
    """A finite whole number (class ids are stored as floats)."""
    return bool(np.isfinite(value)) and float(value).is_integer()


def _fmt_box(box):
    return '(%s)' % ', '.join('%.4g' % v for v in box)


def usable_objects(entries):
    """(class ids, boxes (n, 4) normalised, original image sizes (n, 2) NaN where unknown) of
    every object with a finite class id and a finite, non-empty box inside the image (within
    tolerance)."""
    rows, sizes = [], []
    for entry in entries:
        rows.append(entry.rows[:, :5])
        sizes += [entry.size or (np.nan, np.nan)] * len(entry.rows)
    rows = np.concatenate(rows) if rows else np.zeros((0, 5))
    sizes = np.array(sizes, np.float64).reshape(-1, 2)
    box = rows[:, 1:5]
    with np.errstate(invalid='ignore'):
        ok = (np.all(np.isfinite(rows), axis=1) & (box[:, 0] < box[:, 2]) & (box[:, 1] < box[:, 3])
              & (box.min(axis=1) >= -BOX_OUTSIDE_TOLERANCE)
              & (box.max(axis=1) <= 1 + BOX_OUTSIDE_TOLERANCE))
    return rows[ok, 0], np.clip(box[ok], 0.0, 1.0), sizes[ok]


# ----------------------------------------------------------------------------- the report

def distribution(values):
    """Count, mean and percentiles of `values` (NaN ignored), as plain floats for JSON."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {'count': 0}
    stats = {'count': int(len(values)), 'mean': float(values.mean())}
    stats.update(('p%d' % p, float(v)) for p, v in zip(PERCENTILES, np.percentile(values,
                                                                                   PERCENTILES)))
    return stats


def box_geometry(boxes, data_shape, sizes=None):
    """Per-object arrays: width/height as fractions of the image, in pixels at the network
    input (`data_shape` (height, width), after the aspect-ignoring resize), in the original
    image's pixels (NaN where unknown), the area fraction, sqrt(area) in input pixels (the
    size the anchor coverage is bucketed by) and the input-pixel aspect w/h."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    geometry = {'width_frac': width, 'height_frac': height,
                'width_px': width * data_shape[1], 'height_px': height * data_shape[0],
                'area_frac': width * height}
    geometry['side_px'] = np.sqrt(geometry['width_px'] * geometry['height_px'])
    geometry['aspect'] = geometry['width_px'] / geometry['height_px']
    if sizes is not None:
        geometry['width_image_px'] = width * sizes[:, 0]
        geometry['height_image_px'] = height * sizes[:, 1]
    return geometry


def dataset_report(entries, problems, class_names=None, num_class=None, data_shape=(300, 300),
                   label_width=None):
    """All numbers about the labels as a JSON-ready dict (see `format_report`).  `problems`
    are those found while reading; `check_entries` adds the rest."""
    problems = list(problems) + check_entries(entries, num_class, data_shape, label_width)
    classes, boxes, sizes = usable_objects(entries)
    per_image = Counter(len(e.rows) for e in entries)
    max_objects = max(per_image, default=0)
    class_counts = Counter(int(c) if is_class_id(c) else float(c) for c in classes)
    geometry = box_geometry(boxes, data_shape, sizes)
    return {
        'images': len(entries),
        'objects': int(sum(len(e.rows) for e in entries)),
        'usable_objects': int(len(boxes)),
        'data_shape': list(data_shape),
        'objects_per_class': {class_label(c, class_names): n
                              for c, n in sorted(class_counts.items())},
        'images_without_objects': per_image.get(0, 0),
        'objects_per_image': {str(k): n for k, n in sorted(per_image.items())},
        'max_objects_per_image': max_objects,
        'label_width': HEADER_WIDTH + OBJECT_WIDTH * max_objects,
        'boxes': {name: distribution(values) for name, values in geometry.items()},
        'problem_counts': dict(Counter(p.kind for p in problems).most_common()),
        'problems': [p._asdict() for p in problems],
    }


def class_label(cls, class_names):
    if class_names and is_class_id(cls) and 0 <= cls < len(class_names):
        return class_names[int(cls)]
    return 'id %g' % cls


def format_report(report, listed=PROBLEMS_LISTED):
    """The report for people: counts, distributions and the first problems of each kind."""
    lines = ['%d images, %d objects (%d usable), input %s'
             % (report['images'], report['objects'], report['usable_objects'],
                'x'.join(str(v) for v in report['data_shape'][::-1])),
             'objects per class:']
    width = max([len(n) for n in report['objects_per_class']] + [5])
    lines += ['  %-*s %7d' % (width, n, c) for n, c in report['objects_per_class'].items()]
    lines.append('images without objects: %d' % report['images_without_objects'])
    lines.append('objects per image: %s' % ', '.join(
        '%s: %d' % kv for kv in report['objects_per_image'].items()))
    lines.append('max objects per image: %d -> label width %d (train.py --label-width >= %d)'
                 % (report['max_objects_per_image'], report['label_width'],
                    report['label_width']))
    lines.append('box distributions (p5 / median / p95):')
    for name, stats in report['boxes'].items():
        if stats['count']:
            lines.append('  %-16s %9.4g %9.4g %9.4g' % (name, stats['p5'], stats['p50'],
                                                        stats['p95']))
    lines += problem_lines(report['problems'], listed)
    return '\n'.join(lines)


def problem_lines(problems, listed=PROBLEMS_LISTED):
    """'problems: N' and, per kind, its count and the first `listed` with their location."""
    problems = [p if isinstance(p, Problem) else Problem(**p) for p in problems]
    lines = ['problems: %d' % len(problems)]
    for kind, count in Counter(p.kind for p in problems).most_common():
        lines.append('  %s: %d' % (kind, count))
        of_kind = [p for p in problems if p.kind == kind]
        lines += ['    ' + format_problem(p) for p in of_kind[:listed]]
        if count > listed:
            lines.append('    ... and %d more (all of them are in the JSON report)'
                         % (count - listed))
    return lines


# ----------------------------------------------------------------------------- train.py

def preflight_check(path_imgrec, num_class, label_width=-1):
    """Raise `DatasetError` when the labels of `path_imgrec` would fail training: class ids
    outside [0, num_class), degenerate boxes, malformed labels, or (for `label_width` > 0)
    an image with more objects than the label width holds.  Reads only the record headers."""
    entries, problems = entries_from_rec(path_imgrec, read_sizes=False)
    problems += [p for p in check_entries(entries, num_class, None, label_width)
                 if p.kind != OUT_OF_RANGE_BOX]  # clipped by the iterator's augmenters
    if problems:
        needed = HEADER_WIDTH + OBJECT_WIDTH * max((len(e.rows) for e in entries), default=0)
        raise DatasetError('\n'.join(
            ['%s cannot train a %d-class network (label width needed: %d):'
             % (path_imgrec, num_class, needed)] + problem_lines(problems)
            + ['run tools/analyze_dataset.py --rec %s --num-class %d for the full report'
               % (path_imgrec, num_class)]))
