"""The Caffe converter on a few hundred seeded mutations of a small SSD (prototxt and
caffemodel): every conversion either succeeds or raises CaffeError, nothing else.

The loop runs in one child process (this file run as a script), which prints each case before
converting it: a native crash (protobuf's upb parser, MXNet) then fails the test naming the
mutation, rather than killing the test run.  No time limits are asserted; the child's timeout
only bounds a hang."""
import json
import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_MUTATIONS = 300
SEED = 20260114
NUMBER = re.compile(r'(?<=: )-?\d+(\.\d+)?(e-?\d+)?\b')
IDENTIFIER = re.compile(r'^\s*([a-z_]+)(?=\s*[:{])', re.MULTILINE)
ODD_NUMBERS = ['0', '-1', '1', '3', '2.5', '65536', '2147483648', '-2147483649', '1e30', 'nan',
               'inf', '99999999999999999999']


def misspell(rng, word):
    k = int(rng.integers(len(word)))
    return word[:k] + word[k + 1:] if len(word) > 1 else word + 'x'


def mutate_prototxt(rng, text):
    """(description, mutated text)."""
    kind = rng.choice(['number', 'number', 'number', 'identifier', 'drop_line', 'dup_line',
                       'byte', 'truncate'])
    lines = text.split('\n')
    if kind == 'number':
        spots = list(NUMBER.finditer(text))
        spot = spots[int(rng.integers(len(spots)))]
        value = str(rng.choice(ODD_NUMBERS))
        return ('prototxt: %r at offset %d -> %s' % (spot.group(), spot.start(), value),
                text[:spot.start()] + value + text[spot.end():])
    if kind == 'identifier':
        spots = list(IDENTIFIER.finditer(text))
        spot = spots[int(rng.integers(len(spots)))]
        word = misspell(rng, spot.group(1))
        return ('prototxt: field %r at offset %d -> %r' % (spot.group(1), spot.start(1), word),
                text[:spot.start(1)] + word + text[spot.end(1):])
    if kind in ('drop_line', 'dup_line'):
        k = int(rng.integers(len(lines)))
        lines[k:k + 1] = [] if kind == 'drop_line' else [lines[k]] * 2
        return 'prototxt: %s %d (%r)' % (kind, k + 1, text.split('\n')[k]), '\n'.join(lines)
    if kind == 'byte':
        k = int(rng.integers(len(text)))
        char = chr(int(rng.integers(32, 127)))
        return 'prototxt: char %d -> %r' % (k, char), text[:k] + char + text[k + 1:]
    k = int(rng.integers(len(text)))
    return 'prototxt: truncated at %d' % k, text[:k]


def mutate_caffemodel(rng, data, pb):
    """(description, mutated bytes): byte-level damage, or a blob whose declared shape lies."""
    kind = rng.choice(['flip', 'flip', 'truncate', 'insert', 'zeros', 'blob_shape', 'blob_data'])
    data = bytearray(data)
    if kind == 'flip':
        spots = rng.integers(len(data), size=int(rng.integers(1, 9)))
        for k in spots:
            data[k] = int(rng.integers(256))
        return 'caffemodel: bytes %s replaced' % sorted(spots.tolist()), bytes(data)
    if kind == 'truncate':
        k = int(rng.integers(len(data)))
        return 'caffemodel: truncated at %d' % k, bytes(data[:k])
    if kind == 'insert':
        k, n = int(rng.integers(len(data))), int(rng.integers(1, 16))
        return ('caffemodel: %d random bytes inserted at %d' % (n, k),
                bytes(data[:k]) + bytes(rng.integers(256, size=n).astype(np.uint8)) + bytes(data[k:]))
    if kind == 'zeros':
        k, n = int(rng.integers(len(data))), int(rng.integers(1, 64))
        data[k:k + n] = bytes(len(data[k:k + n]))
        return 'caffemodel: %d bytes zeroed at %d' % (n, k), bytes(data)
    net = pb.NetParameter.FromString(bytes(data))
    with_blobs = [layer for layer in net.layer if layer.blobs]
    layer = with_blobs[int(rng.integers(len(with_blobs)))]
    blob = layer.blobs[int(rng.integers(len(layer.blobs)))]
    if kind == 'blob_shape':
        dims = blob.shape.dim
        k = int(rng.integers(len(dims)))
        dims[k] = int(rng.choice([0, 1, dims[k] + 1, 2 ** 31, 2 ** 40]))
        return 'caffemodel: layer %r blob dim %d -> %d' % (layer.name, k, dims[k]), \
            net.SerializeToString()
    values = np.array(blob.data)
    values[int(rng.integers(len(values)))] = rng.choice([np.nan, np.inf, 1e38])
    del blob.data[:]
    blob.data.extend(values.tolist())
    return 'caffemodel: layer %r gets a nan/inf/huge value' % layer.name, net.SerializeToString()


def fuzz(workdir, seed, count):
    """Print one JSON line per case: {"case", "mutation"} before converting, then
    {"case", "outcome": "ok" | "CaffeError" | "<other exception type>", "detail"}."""
    sys.path.insert(0, ROOT)
    from tests.test_caffe_ssd import build_small_ssd
    from tools.caffe_converter.caffe_io import CaffeError
    from tools.caffe_converter.converter import convert
    from tools.caffe_converter.proto import load_caffe_pb2

    pb = load_caffe_pb2()
    rng = np.random.default_rng(seed)
    prototxt, caffemodel = build_small_ssd(np.random.default_rng(seed)).save(
        os.path.join(workdir, 'base.prototxt'), os.path.join(workdir, 'base.caffemodel'))
    text, data = open(prototxt).read(), open(caffemodel, 'rb').read()
    for case in range(count):
        mutated_text, mutated_data = text, data
        if rng.random() < 0.5:
            mutation, mutated_text = mutate_prototxt(rng, text)
        else:
            mutation, mutated_data = mutate_caffemodel(rng, data, pb)
        paths = os.path.join(workdir, 'm.prototxt'), os.path.join(workdir, 'm.caffemodel')
        with open(paths[0], 'w') as f:
            f.write(mutated_text)
        with open(paths[1], 'wb') as f:
            f.write(mutated_data)
        print(json.dumps({'case': case, 'mutation': mutation}), flush=True)
        try:
            convert(*paths)
            outcome, detail = 'ok', ''
        except CaffeError as err:
            outcome, detail = 'CaffeError', str(err)
        except Exception as err:  # noqa: BLE001 (any other exception is what we look for)
            outcome, detail = type(err).__name__, str(err)[:300]
        print(json.dumps({'case': case, 'outcome': outcome, 'detail': detail}), flush=True)


def test_converter_never_crashes_on_mutated_files(tmp_path):
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), str(SEED), str(NUM_MUTATIONS)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    mutations = {r['case']: r['mutation'] for r in records if 'mutation' in r}
    outcomes = {r['case']: r for r in records if 'outcome' in r}
    assert proc.returncode == 0, 'child died (rc %d) on case %s: %s\n%s' % (
        proc.returncode, max(mutations, default=None), mutations.get(max(mutations, default=0)),
        proc.stderr[-2000:])
    assert len(outcomes) == NUM_MUTATIONS
    bad = ['%s -> %s: %s' % (mutations[c], r['outcome'], r['detail'])
           for c, r in sorted(outcomes.items()) if r['outcome'] not in ('ok', 'CaffeError')]
    assert not bad, '\n'.join(bad)
    kinds = {r['outcome'] for r in outcomes.values()}
    assert kinds == {'ok', 'CaffeError'}   # the mutations reach both ends
    one_line = [r['detail'] for r in outcomes.values() if '\n' in r['detail']]
    assert not one_line, one_line[:3]


if __name__ == '__main__':
    fuzz(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
