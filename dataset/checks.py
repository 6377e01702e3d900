"""Checks on detection data before it is trained or evaluated on: record files and label rows.

`check_record_file` is the one place that reads a `.rec` (and its `.idx`) to make sure it is
whole, and says how many records it holds: MXNet's C++ iterator reads the `.rec` sequentially
and never looks at the `.idx`, so a `.rec` cut at a record boundary would otherwise train on
part of the data without a word, and a stale `.idx` would only skew the epoch size.  It reads
records with MXNet's own RecordIO reader, at a few `.idx` offsets (never decoding images), so it
costs milliseconds whatever the size of the file.

`check_label_rows` is the one place that checks label rows `[cls, xmin, ymin, xmax, ymax, ...]`
(padding rows have cls -1) against the number of classes of the model.
"""
import os

import mxnet as mx
import numpy as np

# Records read at evenly spaced .idx offsets, besides the first and the last: an .idx written
# for another file points into the middle of records, which MXNet's reader refuses.
SAMPLED_OFFSETS = 32
PADDING_CLASS = -1


class RecordFileError(ValueError):
    """A .rec/.idx pair is empty, truncated, corrupt or inconsistent; the message names it."""


class LabelError(ValueError):
    """Label rows that the model cannot train or be evaluated on; the message names the data."""


def index_path(path_imgrec):
    """The .idx that belongs to a .rec (written beside it by tools/prepare_dataset.py)."""
    return os.path.splitext(path_imgrec)[0] + '.idx'


def check_record_file(path_imgrec):
    """Number of records in `path_imgrec`, after checking that the file is a whole RecordIO
    file and that its .idx (when there is one) describes exactly this file.

    Raises FileNotFoundError, or RecordFileError naming the file and what is wrong with it.
    Without an .idx every record is read once (no image is decoded)."""
    if not os.path.isfile(path_imgrec):
        raise FileNotFoundError('record file not found: %s' % path_imgrec)
    size = os.path.getsize(path_imgrec)
    if size == 0:
        raise RecordFileError('%s is empty (0 bytes): re-create it with tools/prepare_dataset.py'
                              % path_imgrec)
    if not _read_first_record(path_imgrec):
        raise RecordFileError('%s holds no records' % path_imgrec)
    idx = index_path(path_imgrec)
    if os.path.isfile(idx):
        return _check_against_index(path_imgrec, idx, size)
    return _count_all_records(path_imgrec)


def _reader_error(err):
    """The reason of a dmlc RecordIO check failure ("Invalid RecordIO File"), without the
    C++ check expression."""
    return str(err).strip().splitlines()[-1].rsplit(': ', 1)[-1]


def _read_first_record(path_imgrec):
    reader = mx.recordio.MXRecordIO(path_imgrec, 'r')
    try:
        return reader.read()
    except mx.base.MXNetError as err:
        raise RecordFileError('%s is not a RecordIO file (or is corrupt from its start): %s'
                              % (path_imgrec, _reader_error(err))) from None
    finally:
        reader.close()


def _count_all_records(path_imgrec):
    reader = mx.recordio.MXRecordIO(path_imgrec, 'r')
    count = 0
    try:
        while reader.read() is not None:
            count += 1
    except mx.base.MXNetError as err:
        raise RecordFileError('%s is truncated or corrupt after its first %d records: %s'
                              % (path_imgrec, count, _reader_error(err))) from None
    finally:
        reader.close()
    return count


def read_index(idx):
    """[(key, offset)] of an .idx file, in file order; RecordFileError names a bad line."""
    entries = []
    with open(idx, 'rb') as f:
        for lineno, line in enumerate(f, 1):
            # blank lines too: MXNet's MXIndexedRecordIO fails on them with a bare ValueError
            fields = line.split(b'\t')
            try:
                key, offset = int(fields[0]), int(fields[1])
            except (IndexError, ValueError):
                raise RecordFileError('%s:%d: expected "key<TAB>offset", got %r'
                                      % (idx, lineno, line.rstrip(b'\r\n')[:80])) from None
            entries.append((key, offset))
    return entries


def _check_against_index(path_imgrec, idx, size):
    entries = read_index(idx)
    stale = ('the .rec was cut short (copy or download interrupted?) or the .idx belongs to '
             'another file; re-create both with tools/prepare_dataset.py')
    if not entries:
        raise RecordFileError('%s is empty but %s holds records: %s' % (idx, path_imgrec, stale))
    if len(dict(entries)) != len(entries):
        raise RecordFileError('%s lists some keys more than once: %s' % (idx, stale))
    in_file_order = sorted(entries, key=lambda entry: entry[1])
    beyond = sum(1 for _, offset in entries if offset >= size)
    if beyond:
        raise RecordFileError(
            '%s lists %d records but %s (%d bytes) holds at most %d of them: %s'
            % (idx, len(entries), path_imgrec, size, len(entries) - beyond, stale))
    reader = mx.recordio.MXIndexedRecordIO(idx, path_imgrec, 'r', key_type=int)
    try:
        for number in _sample(len(entries)):
            key, offset = in_file_order[number]
            try:
                reader.read_idx(key)
            except mx.base.MXNetError as err:
                raise RecordFileError('%s: record %d (key %d) at byte %d of %s cannot be read '
                                      '(%s): %s' % (idx, number, key, offset, path_imgrec,
                                                    _reader_error(err), stale)) from None
        # the reader now stands after the last indexed record, which must end the file
        try:
            extra = reader.read()
        except mx.base.MXNetError as err:
            raise RecordFileError('%s is truncated or corrupt after its last indexed record: %s'
                                  % (path_imgrec, _reader_error(err))) from None
        if extra is not None:
            raise RecordFileError('%s holds more records than the %d that %s lists: %s'
                                  % (path_imgrec, len(entries), idx, stale))
    finally:
        reader.close()
    return len(entries)


def _sample(count):
    """Record numbers (in file order) to read: evenly spaced, the first and the last included."""
    return sorted(set(np.linspace(0, count - 1, min(count, SAMPLED_OFFSETS + 2)).astype(int)))


def check_label_rows(labels, num_classes=None, source='labels'):
    """Check label rows (..., >= 5) `[cls, xmin, ymin, xmax, ymax, ...]`: class ids must be whole
    numbers in [0, num_classes) or -1 (padding), coordinates finite.  Raises LabelError naming
    `source` (a file, and where in it) and the first offending row.

    Degenerate boxes (xmin >= xmax) are not refused: random crops can produce them and the
    target operator ignores them; tools/prepare_dataset.py already drops them from the data."""
    rows = np.asarray(labels, dtype=np.float64)
    rows = rows.reshape(-1, rows.shape[-1]) if rows.size else rows.reshape(0, 5)
    cls = rows[:, 0]
    objects = cls != PADDING_CLASS
    problems = (
        (~np.isfinite(cls) | (cls != np.round(cls)), 'class id %s is not a whole number'),
        (objects & (cls < 0), 'class id %s is negative (only -1, padding, is allowed)'),
        (objects & ~np.isfinite(rows[:, 1:5]).all(axis=1), 'class %s has a non-finite box'),
    )
    if num_classes is not None:
        problems += ((objects & (cls >= num_classes),
                      'class id %%s is not below the number of classes %d (ids 0..%d); pass '
                      'the data\'s class count (train.py / evaluate.py --num-class)'
                      % (num_classes, num_classes - 1)),)
    for bad, message in problems:
        if bad.any():
            row = int(np.argmax(bad))
            raise LabelError('%s: %s (row %s)' % (source, message % _fmt(cls[row]),
                                                  _fmt_row(rows[row])))


def _fmt(value):
    return '%d' % value if np.isfinite(value) and value == int(value) else '%g' % value


def _fmt_row(row):
    return '[%s]' % ', '.join('%.4g' % v for v in row)
