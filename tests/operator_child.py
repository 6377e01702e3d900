"""Runs MultiBox operator calls in a child process, so that a crash fails a test instead of
killing the test run.

Used by tests/test_operator_robustness.py as ``python tests/operator_child.py SEED ...``
(with the repository root on PYTHONPATH): for every seed it prints ``start SEED``, builds the
random case of that seed, calls the operator and prints ``done SEED ok`` or ``done SEED
MXNetError``.  Any other exception, a crash or a hang leaves a ``start`` without its ``done``.
"""
import sys

import mxnet as mx
import numpy as np

from symbol import operators

operators.load()

SPECIAL_VALUES = (np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -1.0)


def _values(rng, shape, low, high):
    """Uniform values with, at random, some NaN/inf/huge/negative entries or a huge scale."""
    data = rng.uniform(low, high, shape)
    mode = rng.randint(4)
    if mode == 1 and data.size:
        flat = data.reshape(-1)
        picks = rng.randint(0, flat.size, max(1, flat.size // 10))
        flat[picks] = rng.choice(SPECIAL_VALUES, picks.size)
    elif mode == 2:
        data = data * rng.choice([1e6, -1e6, 1e-30])
    return data


def _reshaped(rng, data):
    """`data`, or (now and then) its values in a shape with a dimension dropped, added or
    zeroed."""
    shape = list(data.shape)
    mode = rng.randint(12)
    if mode == 0:
        shape.pop(rng.randint(len(shape)))
    elif mode == 1:
        shape.insert(rng.randint(len(shape) + 1), rng.randint(1, 3))
    elif mode == 2:
        shape[rng.randint(len(shape))] = 0
    return np.resize(data, shape) if data.size else data


def _labels(rng, batch, rows, width, num_classes):
    """Label rows [class, xmin, ymin, xmax, ymax, ...], real objects first, -1 padding after
    (sometimes malformed: a padding row with other values, or a real row after padding)."""
    labels = -np.ones((batch, rows, width))
    for n in range(batch):
        count = rng.randint(0, rows + 1)
        xy = rng.uniform(-0.2, 1.0, (count, 2))
        labels[n, :count, 0] = rng.randint(-1, num_classes + 2, count) if rng.rand() < 0.1 \
            else rng.randint(0, max(num_classes, 1), count)
        labels[n, :count, 1:3] = xy
        labels[n, :count, 3:5] = xy + rng.uniform(-0.1, 0.7, (count, 2))
    if rng.rand() < 0.15 and labels.size:
        labels.reshape(-1)[rng.randint(labels.size)] = rng.choice(SPECIAL_VALUES)
    return labels


def _dtype(rng):
    return rng.choice(["float32", "float32", "float64"])


def prior_case(rng):
    data = _reshaped(rng, np.zeros((rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 40),
                                    rng.randint(1, 40))))
    kwargs = dict(sizes=tuple(rng.uniform(0.01, 2.0, rng.randint(1, 4))),
                  ratios=tuple(rng.uniform(0.1, 4.0, rng.randint(1, 4))),
                  clip=bool(rng.randint(2)))
    if rng.rand() < 0.3:
        kwargs["steps"] = tuple(rng.uniform(-0.1, 0.2, 2))
    return "MultiBoxPrior", [data.astype(_dtype(rng))], kwargs


def target_case(rng):
    batch, anchors = rng.randint(1, 5), rng.choice([1, 3, 10, 50, 300])
    rows = rng.choice([1, 5, 12, anchors + 1, 2 * anchors + 3, 200])
    classes, width, dtype = rng.randint(1, 6), rng.choice([5, 6, 8]), _dtype(rng)
    xy = rng.uniform(-0.1, 0.9, (anchors, 2))
    anchor = np.concatenate([xy, xy + rng.uniform(0.0, 0.6, (anchors, 2))], 1)[None]
    if rng.rand() < 0.2:
        anchor = _values(rng, anchor.shape, -2, 2)
    inputs = [_reshaped(rng, x) for x in (anchor, _labels(rng, batch, rows, width, classes),
                                          _values(rng, (batch, classes + 1, anchors), -5, 5))]
    kwargs = dict(overlap_threshold=float(rng.choice([0.0, 0.3, 0.5, 1.0, -1.0])),
                  negative_mining_ratio=float(rng.choice([-1, 0, 1, 3, 1e9])),
                  negative_mining_thresh=float(rng.choice([0.1, 0.5, 2.0])),
                  minimum_negative_samples=int(rng.choice([0, 1, 5, 10 ** 6])))
    return "MultiBoxTarget", [x.astype(dtype) for x in inputs], kwargs


def detection_case(rng):
    batch, anchors, classes = rng.randint(1, 4), rng.choice([1, 7, 60, 400]), rng.randint(2, 6)
    dtype = _dtype(rng)
    prob = _values(rng, (batch, classes, anchors), 0, 1)
    loc = _values(rng, (batch, anchors * 4), -3, 3)
    xy = rng.uniform(-0.1, 0.9, (anchors, 2))
    anchor = np.concatenate([xy, xy + rng.uniform(0.0, 0.5, (anchors, 2))], 1)[None]
    inputs = [_reshaped(rng, x) for x in (prob, loc, anchor)]
    kwargs = dict(threshold=float(rng.choice([0.0, 0.01, 0.5, 2.0])),
                  nms_threshold=float(rng.choice([0.3, 0.5, 1.0])),
                  nms_topk=int(rng.choice([-1, 1, 5, 10 ** 6])),
                  force_suppress=bool(rng.randint(2)),
                  background_id=int(rng.choice([0, 0, 1, classes - 1, classes])),
                  clip=bool(rng.randint(2)))
    return "MultiBoxDetection", [x.astype(dtype) for x in inputs], kwargs


CASE_MAKERS = (prior_case, target_case, detection_case)


def make_case(seed):
    """(operator name, input arrays, keyword arguments) of one random case."""
    rng = np.random.RandomState(seed)
    return CASE_MAKERS[seed % len(CASE_MAKERS)](rng)


def describe(seed):
    name, inputs, kwargs = make_case(seed)
    return "%s(%s, %s)" % (name, ", ".join("%s%s" % (x.dtype, x.shape) for x in inputs), kwargs)


def run_case(seed):
    """Calls the operator of case `seed`; returns 'ok' or 'MXNetError' (other errors raise)."""
    name, inputs, kwargs = make_case(seed)
    try:
        outputs = getattr(mx.nd, name)(*[mx.nd.array(x, dtype=x.dtype) for x in inputs], **kwargs)
        for out in outputs if isinstance(outputs, list) else [outputs]:
            out.asnumpy()
    except mx.base.MXNetError:
        return "MXNetError"
    return "ok"


def main(seeds):
    for seed in seeds:
        print("start", seed, flush=True)
        print("done", seed, run_case(seed), flush=True)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]])
