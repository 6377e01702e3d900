"""Base image database: class names, image paths and validated, normalised labels.

Every dataset reader (VOC, COCO, YOLO, folders of XML, synthetic) turns its annotations into
`ImageRecord`s through `Imdb.add_image`, so the checks on boxes and classes, and the report of
what was skipped and why, are the same for all of them.
"""
import logging
import os
import random
from collections import Counter, namedtuple

import numpy as np

logger = logging.getLogger(__name__)

NAMES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'names')

# Label rows everywhere: [cls, xmin, ymin, xmax, ymax, difficult], coordinates normalised.
OBJECT_WIDTH = 6
# The .lst/.rec label starts with [header_width, object_width]; the header is those two values.
HEADER_WIDTH = 2
# MXNet's ImageDetRecordIter rejects a label without any object row, so an image without objects
# is stored with one padding row; the iterator discards it (its box is empty) and pads with -1.
PADDING_ROW = (-1.0,) * OBJECT_WIDTH
# Annotation tools often put a box edge a pixel or so past the border; such boxes are clipped.
# A box further outside than this fraction of the image side is reported as bad.
BOX_OUTSIDE_TOLERANCE = 0.01
# How many issues of one kind are logged one by one before only counting them.
ISSUES_LOGGED_PER_KIND = 10

# Issue kinds, reported per file and counted in the preparation summary.
UNKNOWN_CLASS = 'unknown class'
EMPTY_BOX = 'empty box (min >= max)'
BOX_OUTSIDE = 'box outside the image'
MISSING_ANNOTATION = 'missing annotation file'
BAD_ANNOTATION = 'unreadable annotation'
NO_OBJECTS = 'no objects left'
MISSING_IMAGE = 'missing image file'
CORRUPT_IMAGE = 'unreadable or corrupt image'
SIZE_MISMATCH = 'image size differs from annotation'
UNUSABLE_FILE_NAME = 'file name holds a tab or line break (the .lst cannot list it)'

ImageRecord = namedtuple('ImageRecord', ['index', 'path', 'label', 'size'])
ImageRecord.__doc__ = """One image: `index` (the dataset's id), absolute `path`, `label` float32
(num_objects, 6) array, `size` (width, height) stated by the annotation or None when unknown."""

Issue = namedtuple('Issue', ['kind', 'source', 'detail', 'dropped_image'])


class IssueLog:
    """Collects bad-input findings: each is logged with its file and reason, and counted."""

    def __init__(self):
        self.issues = []
        self._logged = Counter()

    def add(self, kind, source, detail='', dropped_image=False):
        issue = Issue(kind, source, detail, dropped_image)
        self.issues.append(issue)
        self._logged[kind] += 1
        if self._logged[kind] <= ISSUES_LOGGED_PER_KIND:
            logger.warning(format_issue(issue))
        return issue

    def counts(self, dropped_image):
        """Counter of issue kinds for dropped images (True) or skipped objects (False)."""
        return Counter(i.kind for i in self.issues if i.dropped_image == dropped_image)

    def __len__(self):
        return len(self.issues)

    def __iter__(self):
        return iter(self.issues)


def format_issue(issue):
    action = 'image dropped' if issue.dropped_image else 'object skipped'
    detail = ': %s' % issue.detail if issue.detail else ''
    return '%s: %s%s (%s)' % (issue.source, issue.kind, detail, action)


def load_class_names(spec, default=None):
    """Class names from a list, a comma-separated string, a file with one name per line, or the
    name of a file in dataset/names/ (with or without the .names suffix)."""
    if spec is None or spec == '':
        if default is None:
            raise ValueError('class names are required (a list, "a,b,c", or a .names file)')
        spec = default
    if isinstance(spec, (list, tuple)):
        names = [str(n).strip() for n in spec]
    else:
        path = _find_names_file(spec)
        if path is not None:
            with open(path) as f:
                names = [line.strip() for line in f if line.strip()]
        else:
            names = [n.strip() for n in spec.split(',') if n.strip()]
    if not names:
        raise ValueError('no class names found in %r' % (spec,))
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise ValueError('duplicate class names in %r: %s' % (spec, duplicates))
    return names


def _find_names_file(spec):
    in_names_dir = os.path.join(NAMES_DIR, spec)
    for candidate in (spec, in_names_dir, in_names_dir + '.names'):
        if os.path.isfile(candidate):
            return candidate
    return None


class Imdb:
    """A list of images with labels `[cls, xmin, ymin, xmax, ymax, difficult]` (normalised).

    Subclasses read their annotation format and call `add_image`; images whose objects were all
    rejected are dropped unless `true_negative_images` keeps them as object-free examples.
    """

    def __init__(self, name, classes, true_negative_images=False):
        self.name = name
        self.classes = list(classes)
        self.true_negative_images = true_negative_images
        self.records = []
        self.issues = IssueLog()
        self._class_ids = {c: i for i, c in enumerate(self.classes)}

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def num_images(self):
        return len(self.records)

    @property
    def image_set_index(self):
        return [r.index for r in self.records]

    @property
    def max_objects(self):
        return max((len(r.label) for r in self.records), default=0)

    def image_path_from_index(self, i):
        return self.records[i].path

    def label_from_index(self, i):
        return self.records[i].label

    def shuffled_records(self, shuffle, seed=0):
        records = list(self.records)
        if shuffle:
            random.Random(seed).shuffle(records)
        return records

    def add_image(self, index, path, objects, size=None, source=None):
        """Validate `objects` = [(class name or id, xmin, ymin, xmax, ymax, difficult), ...] in
        normalised coordinates and store the image, or drop it when nothing is left."""
        source = source or path
        rows = [self._validated_row(obj, k, source) for k, obj in enumerate(objects)]
        rows = [row for row in rows if row is not None]
        if not rows and not self.true_negative_images:
            detail = 'all %d objects rejected' % len(objects) if objects else 'no objects annotated'
            self.issues.add(NO_OBJECTS, source, detail, dropped_image=True)
            return None
        label = np.array(rows, dtype=np.float32).reshape(-1, OBJECT_WIDTH)
        record = ImageRecord(index, path, label, size)
        self.records.append(record)
        return record

    def _validated_row(self, obj, k, source):
        cls, xmin, ymin, xmax, ymax, difficult = obj
        what = 'object %d (%s)' % (k, cls)
        cls_id = self._class_id(cls)
        if cls_id is None:
            self.issues.add(UNKNOWN_CLASS, source,
                            '%r not in %d known classes' % (cls, self.num_classes))
            return None
        box = np.array([xmin, ymin, xmax, ymax], dtype=np.float64)
        if not np.all(np.isfinite(box)) or box[0] >= box[2] or box[1] >= box[3]:
            self.issues.add(EMPTY_BOX, source, '%s box %s' % (what, _fmt_box(box)))
            return None
        if box.min() < -BOX_OUTSIDE_TOLERANCE or box.max() > 1 + BOX_OUTSIDE_TOLERANCE:
            self.issues.add(BOX_OUTSIDE, source, '%s normalised box %s is outside [0, 1]'
                            % (what, _fmt_box(box)))
            return None
        box = np.clip(box, 0.0, 1.0)
        return [cls_id] + box.tolist() + [float(bool(difficult))]

    def _class_id(self, cls):
        if isinstance(cls, (int, np.integer)):
            return int(cls) if 0 <= cls < self.num_classes else None
        return self._class_ids.get(cls)


def _fmt_box(box):
    return '(%s)' % ', '.join('%.4g' % v for v in box)


def image_root(records):
    """The deepest folder containing every image (the root written into .lst paths)."""
    if not records:
        return ''
    return os.path.commonpath([os.path.dirname(os.path.abspath(r.path)) for r in records])


def _stored_rows(label):
    rows = np.asarray(label, dtype=np.float32).reshape(-1, OBJECT_WIDTH)
    return rows if len(rows) else np.array([PADDING_ROW], np.float32)


def format_label(label):
    """Label values of one image for a .lst line: [2, 6, objects...] as text."""
    values = ['%d' % HEADER_WIDTH, '%d' % OBJECT_WIDTH]
    for cls, xmin, ymin, xmax, ymax, difficult in _stored_rows(label):
        values += ['%d' % cls] + ['%.6f' % v for v in (xmin, ymin, xmax, ymax)] + ['%d' % difficult]
    return values


def packed_label(label):
    """The float32 vector packed into a record header: [2, 6, cls, xmin, ..., difficult, ...]."""
    header = np.array([HEADER_WIDTH, OBJECT_WIDTH], np.float32)
    return np.concatenate([header, _stored_rows(label).reshape(-1)])


def imglist_line(idx, record, root):
    path = os.path.relpath(os.path.abspath(record.path), root) if root else record.path
    return '\t'.join([str(idx)] + format_label(record.label) + [path.replace(os.sep, '/')])


def write_imglist(fname, records, root):
    """Write records as .lst lines numbered 0..N-1, atomically (temp file, then rename; the
    temp file is removed if writing fails).  Paths are written as the bytes of their file names
    (surrogateescape), which is what MXNet's reader and the file system expect."""
    tmp = fname + '.tmp'
    try:
        with open(tmp, 'w', encoding='utf-8', errors='surrogateescape') as f:
            for idx, record in enumerate(records):
                f.write(imglist_line(idx, record, root) + '\n')
        os.replace(tmp, fname)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


LST_FORMAT = 'idx<TAB>2<TAB>6<TAB>cls<TAB>xmin<TAB>ymin<TAB>xmax<TAB>ymax<TAB>difficult...<TAB>path'


def read_imglist(fname, keep_padding=False):
    """Parse a detection .lst back into [(idx, label (n, object_width) array, path)]; padding
    rows (class -1) are left out unless `keep_padding`.  A malformed line is a ValueError naming
    file and line."""
    entries = []
    with open(fname, encoding='utf-8', errors='surrogateescape') as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                idx, label, path = _parse_imglist_line(line.rstrip('\r\n'), '%s:%d' % (fname, lineno))
                entries.append((idx, label if keep_padding else label[label[:, 0] >= 0], path))
    return entries


def _parse_imglist_line(line, where):
    fields = line.split('\t')
    # idx, header width, object width, one object of at least 5 values, path
    if len(fields) < 3 + 5 + 1:
        raise ValueError('%s: %d tab-separated columns, a detection .lst line needs at least 9: '
                         '%s; got %r' % (where, len(fields), LST_FORMAT, line[:120]))
    try:
        idx = int(fields[0])
        values = [float(v) for v in fields[1:-1]]
    except ValueError as err:
        raise ValueError('%s: a label column is not a number (%s)' % (where, err)) from None
    header, width = values[0], values[1]
    if header != int(header) or width != int(width) or not 2 <= header <= len(values) or width < 5:
        raise ValueError('%s: label starts with [%g, %g], expected [header width >= 2, object '
                         'width >= 5] (%s)' % (where, header, width, LST_FORMAT))
    objects = values[int(header):]
    if not objects or len(objects) % int(width):
        raise ValueError('%s: %d label values do not form objects of width %d'
                         % (where, len(objects), width))
    if not np.all(np.isfinite(objects)):
        raise ValueError('%s: a label value is not finite (nan or inf)' % where)
    return idx, np.array(objects, dtype=np.float32).reshape(-1, int(width)), fields[-1]
