"""Bad data files are refused with one line naming the file (dataset.checks and where
DetRecordIter applies it): cut, stale, corrupt or empty record files, malformed .lst lines,
class ids beyond the model, batch sizes the data cannot fill."""
import shutil

import mxnet as mx
import numpy as np
import pytest

from config.config import cfg
from dataset.checks import (LabelError, RecordFileError, check_label_rows, check_record_file,
                            index_path)
from dataset.imdb import format_label
from dataset.iterator import DetRecordIter, estimate_label_pad_width
from tests.test_data_iterator import BOXES, write_rec

VALID = dict(cfg.valid, round_batch=False)


def record_offsets(rec):
    reader = mx.recordio.MXIndexedRecordIO(index_path(rec), rec, 'r')
    offsets = [reader.idx[k] for k in reader.keys]
    reader.close()
    return offsets


def copy_pair(rec, tmp_path, name, rec_bytes=None, idx_from=None):
    """`name`.rec holding `rec_bytes` (default: rec's bytes) with the .idx of `idx_from`
    (default: rec's own)."""
    target = str(tmp_path / (name + '.rec'))
    with open(target, 'wb') as f:
        f.write(open(rec, 'rb').read() if rec_bytes is None else rec_bytes)
    shutil.copy(index_path(idx_from or rec), index_path(target))
    return target


@pytest.fixture
def ten(tmp_path):
    return write_rec(tmp_path / 'ten', [BOXES[:1 + i % 5] for i in range(10)])


def test_whole_file_counts_its_records_with_and_without_idx(ten, tmp_path):
    assert check_record_file(ten) == 10
    no_idx = str(tmp_path / 'noidx.rec')
    shutil.copy(ten, no_idx)
    assert check_record_file(no_idx) == 10
    assert DetRecordIter(ten, 4, 32, **VALID).num_records == 10


def test_rec_cut_at_a_record_boundary_is_refused(ten, tmp_path):
    # 5 whole records: MXNet's iterator alone would train on them without a word
    half = copy_pair(ten, tmp_path, 'half', open(ten, 'rb').read()[:record_offsets(ten)[5]])
    with pytest.raises(RecordFileError) as err:
        DetRecordIter(half, 2, 32, **VALID)
    assert str(err.value).startswith(
        '%s lists 10 records but %s (%d bytes) holds at most 5 of them: the .rec was cut short'
        % (index_path(half), half, record_offsets(ten)[5]))


def test_rec_cut_inside_its_last_record_is_refused(ten, tmp_path):
    cut = copy_pair(ten, tmp_path, 'cut', open(ten, 'rb').read()[:-100])
    with pytest.raises(RecordFileError, match=r'cut.idx: record 9 \(key 9\) at byte %d of .*cut.rec '
                       r'cannot be read' % record_offsets(ten)[9]):
        check_record_file(cut)


def test_stale_idx_of_a_longer_file_is_refused(tmp_path):
    # the .idx of a 10-record file beside a 6-record one whose records have other sizes
    longer = write_rec(tmp_path / 'longer', [BOXES] * 10)
    shorter = write_rec(tmp_path / 'shorter', [BOXES[:1]] * 4 + [BOXES] * 2,
                        image=np.zeros((64, 48, 3), np.uint8))
    stale = copy_pair(shorter, tmp_path, 'stale', idx_from=longer)
    with pytest.raises(RecordFileError, match='stale.idx lists 10 records but .*stale.rec'):
        check_record_file(stale)


def test_stale_idx_pointing_inside_records_is_refused(tmp_path):
    # as many records as the .idx says, but of other sizes: offsets fall inside records
    small = write_rec(tmp_path / 'small', [BOXES[:1]] * 10, image=np.zeros((64, 48, 3), np.uint8))
    big = write_rec(tmp_path / 'big', [BOXES] * 10)
    stale = copy_pair(big, tmp_path, 'stale', idx_from=small)
    with pytest.raises(RecordFileError, match=r'stale.idx: record 1 \(key 1\) at byte %d of '
                       r'.*stale.rec cannot be read \(Invalid RecordIO File\)'
                       % record_offsets(small)[1]):
        check_record_file(stale)


def test_stale_idx_of_a_shorter_file_is_refused(tmp_path, ten):
    # an .idx listing the first 4 of 10 records: the epoch size would be 4 images
    first4 = write_rec(tmp_path / 'first4', [BOXES[:1 + i % 5] for i in range(4)])
    stale = copy_pair(ten, tmp_path, 'stale', idx_from=first4)
    with pytest.raises(RecordFileError, match='stale.rec holds more records than the 4 that '
                       '.*stale.idx lists'):
        check_record_file(stale)


@pytest.mark.parametrize('content, message', [
    (b'', r'is empty \(0 bytes\)'),
    (b'\x00' * 3, r'is not a RecordIO file \(or is corrupt from its start\)'),
    (bytes(np.random.RandomState(0).randint(0, 256, 5000, dtype=np.uint8)),
     r'is not a RecordIO file \(or is corrupt from its start\): Invalid RecordIO File'),
])
def test_empty_or_garbage_rec_is_named(tmp_path, content, message):
    bad = tmp_path / 'bad.rec'
    bad.write_bytes(content)
    with pytest.raises(RecordFileError, match=r'^%s %s' % (str(bad).replace('.', r'\.'), message)):
        DetRecordIter(str(bad), 2, 32, **VALID)


def test_truncated_rec_without_idx_says_where(ten, tmp_path):
    cut = tmp_path / 'cut.rec'
    cut.write_bytes(open(ten, 'rb').read()[:record_offsets(ten)[7] + 50])
    with pytest.raises(RecordFileError, match='cut.rec is truncated or corrupt after its first 7 '
                       'records'):
        DetRecordIter(str(cut), 2, 32, **VALID)


@pytest.mark.parametrize('line', ['10\tnot-an-offset\n', '\n', '10 335960\n'])
def test_malformed_idx_line_is_named(ten, tmp_path, line):
    broken = copy_pair(ten, tmp_path, 'broken')
    with open(index_path(broken), 'a') as f:
        f.write(line)
    with pytest.raises(RecordFileError, match=r'broken.idx:11: expected "key<TAB>offset", got '
                       r"b'%s'" % line.strip().replace('\t', r'\\t')):
        check_record_file(broken)


def test_label_width_estimate_names_a_corrupt_file(tmp_path):
    bad = tmp_path / 'bad.rec'
    bad.write_bytes(b'\x00' * 64)
    with pytest.raises(RecordFileError, match='bad.rec is not a RecordIO file'):
        estimate_label_pad_width(str(bad))


def write_lst(path, lines):
    path.write_text(''.join('\t'.join(str(v) for v in line) + '\n' for line in lines))
    return str(path)


def lst_line(idx, label):
    return [idx] + format_label(label) + ['%d.png' % idx]


def test_non_numeric_lst_label_is_an_error_not_zero(ten, tmp_path):
    lines = [lst_line(i, BOXES[:1 + i % 5]) for i in range(10)]
    lines[3][4] = '0.2x'   # MXNet's own parser reads this xmin as 0
    lst = write_lst(tmp_path / 'a.lst', lines)
    with pytest.raises(ValueError, match=r"a.lst:4: a label column is not a number "
                       r"\(could not convert string to float: '0.2x'\)"):
        DetRecordIter(ten, 2, 32, path_imglist=lst, **VALID)


def test_lst_line_with_too_few_columns_is_named(ten, tmp_path):
    lines = [lst_line(i, BOXES[:1]) for i in range(10)]
    lines[6] = [6, 2, 6, '0.png']
    lst = write_lst(tmp_path / 'a.lst', lines)
    with pytest.raises(ValueError, match='a.lst:7: 4 tab-separated columns, a detection .lst '
                       'line needs at least 9'):
        DetRecordIter(ten, 2, 32, path_imglist=lst, **VALID)


def test_lst_objects_that_do_not_divide_into_rows_are_named(ten, tmp_path):
    lines = [lst_line(i, BOXES[:1]) for i in range(10)]
    lines[0].insert(-1, '0.5')
    lst = write_lst(tmp_path / 'a.lst', lines)
    with pytest.raises(ValueError, match='a.lst:1: 7 label values do not form objects of width 6'):
        DetRecordIter(ten, 2, 32, path_imglist=lst, **VALID)


def test_num_classes_below_the_class_ids_is_refused_when_the_iterator_is_made(ten):
    # BOXES use class ids 0..3
    assert DetRecordIter(ten, 5, 32, num_classes=4, **VALID).num_classes == 4
    with pytest.raises(LabelError) as err:
        DetRecordIter(ten, 5, 32, num_classes=3, **VALID)
    assert str(err.value) == (
        '%s (batch 0): class id 3 is not below the number of classes 3 (ids 0..2); pass the '
        "data's class count (train.py / evaluate.py --num-class) (row [3, 0.6, 0.6, 0.8, 0.8, 0])"
        % ten)


def test_class_ids_are_checked_in_every_batch(tmp_path):
    # class 7 only appears in the second batch
    labels = [BOXES[:1]] * 4 + [np.array([[7, .1, .1, .5, .5, 0]], np.float32)]
    rec = write_rec(tmp_path / 'late', labels)
    it = DetRecordIter(rec, 4, 32, num_classes=5, **VALID)
    it.next()
    with pytest.raises(LabelError, match=r'late.rec \(batch 1\): class id 7 is not below'):
        it.next()
    it.reset()
    it.next()   # the count restarts with the epoch


def test_lst_class_ids_are_checked_against_num_classes(ten, tmp_path):
    lines = [lst_line(i, BOXES[:1]) for i in range(10)]
    lines[8] = lst_line(8, np.array([[-2, .1, .1, .5, .5, 0]], np.float32))
    lst = write_lst(tmp_path / 'a.lst', lines)
    with pytest.raises(LabelError, match=r'a.lst \(image index 8\): class id -2 is negative'):
        DetRecordIter(ten, 2, 32, path_imglist=lst, num_classes=20, **VALID)


@pytest.mark.parametrize('rows, message', [
    ([[1.5, .1, .1, .2, .2, 0]], 'class id 1.5 is not a whole number'),
    ([[np.nan, .1, .1, .2, .2, 0]], 'class id nan is not a whole number'),
    ([[-3, .1, .1, .2, .2, 0]], r'class id -3 is negative \(only -1, padding, is allowed\)'),
    ([[2, .1, np.inf, .2, .2, 0]], 'class 2 has a non-finite box'),
    ([[-1] * 6, [20, .1, .1, .2, .2, 0]], 'class id 20 is not below the number of classes 20'),
])
def test_check_label_rows_names_the_first_bad_row(rows, message):
    with pytest.raises(LabelError, match='^src: ' + message):
        check_label_rows(np.array(rows, np.float32)[None], 20, 'src')


def test_check_label_rows_accepts_padding_and_degenerate_boxes():
    rows = np.array([[[19, .1, .1, .2, .2, 1], [0, .5, .5, .5, .5, 0], [-1] * 6]], np.float32)
    check_label_rows(rows, 20, 'src')
    check_label_rows(np.zeros((0, 6)), 1, 'src')
    check_label_rows(rows, None, 'src')   # without a class count: only the count-free checks


@pytest.mark.parametrize('batch_size', [0, -4, 2.0])
def test_batch_size_must_be_a_positive_whole_number(ten, batch_size):
    with pytest.raises(ValueError, match='batch size must be a positive whole number, got %r'
                       % (batch_size,)):
        DetRecordIter(ten, batch_size, 32, **VALID)


def test_training_batch_larger_than_the_data_is_refused(ten):
    with pytest.raises(ValueError, match=r'batch size 11 is larger than the 10 images of .*ten.rec: '
                       r'every batch would repeat images; use a batch size <= 10'):
        DetRecordIter(ten, 11, 32, **cfg.train)
    with pytest.raises(ValueError, match='larger than the 5 images of .*ten.rec per shard'):
        DetRecordIter(ten, 6, 32, num_parts=2, part_index=0, **cfg.train)


def test_evaluation_batch_larger_than_the_data_is_one_padded_batch(ten):
    batches = list(DetRecordIter(ten, 16, 32, **VALID))
    assert len(batches) == 1 and batches[0].pad == 6
