"""Pack an image database into MXNet RecordIO for `mx.io.ImageDetRecordIter`.

Same result as MXNet's `im2rec.py --pack-label` on a detection .lst: one record per image whose
header label is `[2, 6, cls, xmin, ymin, xmax, ymax, difficult, ...]`, plus the .idx and the .lst
itself.  Every image is decoded (in threads) to check it before it is packed; images that cannot
be read, or whose size disagrees with their annotation, are reported and left out, and the .lst
lists exactly the packed images.  Outputs are written under temporary names and renamed only
when complete, so an interrupted run never leaves a half-written .rec that looks finished.
"""
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import cv2
import mxnet as mx
import numpy as np
from tqdm import tqdm

from .imdb import (CORRUPT_IMAGE, HEADER_WIDTH, MISSING_IMAGE, OBJECT_WIDTH, SIZE_MISMATCH,
                   UNUSABLE_FILE_NAME, format_issue, image_root, packed_label, write_imglist)

logger = logging.getLogger(__name__)

JPEG_QUALITY = 95          # im2rec's default, used whenever an image has to be re-encoded
IMAGES_PER_CHUNK = 256     # bounds memory: encoded images held between the threads and the writer
JPEG_START, JPEG_END = b'\xff\xd8', b'\xff\xd9'


class PrepareError(RuntimeError):
    """Nothing usable was left to pack."""


class PrepareResult:
    """What `prepare_imdb` wrote and what it found; `summary()` formats it for people."""

    def __init__(self, imdb, paths, root, records, elapsed):
        self.name = imdb.name
        self.classes = imdb.classes
        self.issues = imdb.issues
        self.lst, self.rec, self.idx = paths
        self.root = root
        self.records = records
        self.elapsed = elapsed
        self.issues_file = None

    @property
    def num_images(self):
        return len(self.records)

    @property
    def max_objects(self):
        return max((len(r.label) for r in self.records), default=0)

    @property
    def label_width(self):
        """Smallest `label_pad_width` for DetRecordIter / `train.py --label-width`."""
        return HEADER_WIDTH + OBJECT_WIDTH * self.max_objects

    def objects_per_class(self):
        counts = Counter(int(c) for r in self.records for c in r.label[:, 0])
        return {name: counts[i] for i, name in enumerate(self.classes)}

    def summary(self):
        per_class = self.objects_per_class()
        empty = sum(1 for r in self.records if len(r.label) == 0)
        lines = ['%s: %d images, %d objects packed into %s (+ .idx, .lst) in %.1f s'
                 % (self.name, self.num_images, sum(per_class.values()), self.rec, self.elapsed),
                 '  image root (paths in the .lst): %s' % self.root,
                 '  objects per class:']
        width = max([len(n) for n in per_class] + [5])
        lines += ['    %-*s %7d' % (width, n, c) for n, c in per_class.items()]
        lines.append('  images without objects (true negatives): %d' % empty)
        lines.append('  max objects per image: %d -> label width %d (use --label-width >= %d)'
                     % (self.max_objects, self.label_width, self.label_width))
        for title, dropped in (('dropped images', True), ('skipped objects', False)):
            counts = self.issues.counts(dropped)
            lines.append('  %s: %d' % (title, sum(counts.values())))
            lines += ['    %-40s %7d' % (kind, n) for kind, n in counts.most_common()]
        if self.issues_file:
            lines.append('  every problem, with its file: %s' % self.issues_file)
        return '\n'.join(lines)


def output_paths(target):
    """(lst, rec, idx) for a target given as `x.lst`, `x.rec` or the prefix `x`."""
    prefix, ext = os.path.splitext(target)
    if ext not in ('.lst', '.rec', '.idx'):
        prefix = target
    return prefix + '.lst', prefix + '.rec', prefix + '.idx'


def prepare_imdb(imdb, target, shuffle=True, seed=0, num_threads=None, resize=0,
                 quality=JPEG_QUALITY, progress=True):
    """Write `<target>.lst/.rec/.idx` from `imdb`; returns a PrepareResult (see `.summary()`).

    `resize` > 0 rescales every image so its shorter side is `resize` (re-encoded as JPEG at
    `quality`); otherwise JPEG files are stored byte for byte and other formats re-encoded.
    """
    start = time.time()
    paths = output_paths(target)
    issues_path = os.path.splitext(paths[0])[0] + '.issues.txt'
    os.makedirs(os.path.dirname(os.path.abspath(paths[0])), exist_ok=True)
    records = imdb.shuffled_records(shuffle, seed)
    root = image_root(records)
    temps = [p + '.tmp' for p in paths]
    try:
        packed = pack_records(records, temps[1], temps[2], imdb.issues, num_threads, resize,
                              quality, progress)
        if not packed:
            raise PrepareError('%s: no images left to pack; the %d problems found are listed in %s'
                               % (imdb.name, len(imdb.issues), issues_path))
        write_imglist(temps[0], packed, root)
        for temp, path in sorted(zip(temps, paths), key=lambda tp: tp[1].endswith('.rec')):
            os.replace(temp, path)  # the .rec last: its presence means the set is complete
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)
        issues_file = write_issues(imdb.issues, issues_path)
    result = PrepareResult(imdb, paths, root, packed, time.time() - start)
    result.issues_file = issues_file
    return result


def write_issues(issues, path):
    """Every issue, one per line, in `path` (the log shows only the first few of each kind);
    returns the path, or None (and no stale file) when there were none."""
    if not len(issues):
        if os.path.exists(path):
            os.remove(path)
        return None
    # file names that are not UTF-8 are written as their bytes, as in the .lst
    with open(path, 'w', encoding='utf-8', errors='surrogateescape') as f:
        f.writelines(format_issue(issue) + '\n' for issue in issues)
    return path


def pack_records(records, rec_path, idx_path, issues, num_threads=None, resize=0,
                 quality=JPEG_QUALITY, progress=True):
    """Encode `records` in threads and write them in order, numbered 0..N-1 in the written
    order; returns the records actually packed (bad images are reported to `issues`)."""
    num_threads = num_threads or os.cpu_count() or 1
    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'w')
    packed = []
    try:
        with ThreadPoolExecutor(num_threads) as pool, \
                tqdm(total=len(records), desc='packing %s' % os.path.basename(rec_path),
                     unit='img', disable=not progress) as bar:
            for first in range(0, len(records), IMAGES_PER_CHUNK):
                chunk = records[first:first + IMAGES_PER_CHUNK]
                for record, (data, problem) in zip(chunk, pool.map(
                        lambda r: encode_image(r, resize, quality), chunk)):
                    if problem:
                        issues.add(problem[0], record.path, problem[1], dropped_image=True)
                    else:
                        header = mx.recordio.IRHeader(0, packed_label(record.label), len(packed), 0)
                        writer.write_idx(len(packed), mx.recordio.pack(header, data))
                        packed.append(record)
                    bar.update()
    finally:
        writer.close()
    return packed


def encode_image(record, resize=0, quality=JPEG_QUALITY):
    """(bytes to store, None) or (None, (issue kind, detail)) for one image."""
    if any(c in record.path for c in '\t\r\n'):
        return None, (UNUSABLE_FILE_NAME, '')
    try:
        with open(record.path, 'rb') as f:
            data = f.read()
    except FileNotFoundError as err:
        return None, (MISSING_IMAGE, err.strerror or str(err))
    except OSError as err:   # a folder, no permission, an I/O error
        return None, (CORRUPT_IMAGE, 'cannot be read: %s' % (err.strerror or err))
    if not data:
        return None, (CORRUPT_IMAGE, 'empty file (0 bytes)')
    is_jpeg = data.startswith(JPEG_START)
    # OpenCV decodes a cut-off JPEG with a grey bottom and only a warning
    if is_jpeg and not data.rstrip(b'\x00').endswith(JPEG_END):
        return None, (CORRUPT_IMAGE, 'truncated JPEG (no end-of-image marker)')
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:   # OpenCV asserts on some malformed headers instead of failing
        image = None
    if image is None:
        return None, (CORRUPT_IMAGE, 'cannot be decoded (%d bytes)' % len(data))
    height, width = image.shape[:2]
    if record.size is not None and tuple(record.size) != (width, height):
        return None, (SIZE_MISMATCH, 'image is %dx%d, annotation says %dx%d'
                      % ((width, height) + tuple(record.size)))
    if resize > 0:
        image = resize_shorter_side(image, resize)
    elif is_jpeg:
        return data, None
    ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None, (CORRUPT_IMAGE, 'cannot be re-encoded as JPEG')
    return encoded.tobytes(), None


def resize_shorter_side(image, size):
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, new_size, interpolation=interpolation)
