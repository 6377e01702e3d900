"""Compares the emulated GPU operators (harness.py) with the CPU operators, bit for bit.

    python tests/gpu_emulation/compare.py LIBRARY [--cases N] [--fills a5,ff,00]
    python tests/gpu_emulation/compare.py LIBRARY --case NAME | --faults

Loads the project's CPU operators and the emulated library, runs every case once per scratch
fill pattern (MXSSD_EMU_FILL; outputs are poisoned with NaN by the emulation) and prints one
line per mismatch.  Exit status 0 when all agree, 1 otherwise.  Run in a child process: the
emulated library registers its own operators, and its ASan build needs the runtime preloaded.
"""
import argparse
import os
import sys

import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
import mxnet as mx
import numpy as np

from symbol import operators, symbol_factory

SSD_SHAPES = {300: (38, 19, 10, 5, 3, 1), 512: (64, 32, 16, 8, 4, 2, 1)}


def ssd_anchors(size):
    config = symbol_factory.get_config("vgg16_reduced", size)
    parts = [mx.nd.MultiBoxPrior(mx.nd.zeros((1, 1, side, side)), sizes=sizes, ratios=ratios,
                                 steps=(step, step), clip=True).reshape((1, -1, 4))
             for side, sizes, ratios, step in zip(SSD_SHAPES[size], config["sizes"],
                                                  config["ratios"], config["steps"])]
    return mx.nd.concat(*parts, dim=1).asnumpy()


def random_anchors(rng, count, duplicates=False):
    xy = rng.uniform(-0.1, 0.9, (count, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.02, 0.6, (count, 2))], axis=1)
    if duplicates:  # identical anchors: IoU ties that only the tie-break decides
        boxes[1::2] = boxes[0::2][:len(boxes[1::2])]
    return boxes[None]


def random_labels(rng, batch, rows, max_objects, width=6):
    labels = -np.ones((batch, rows, width))
    for n in range(batch):
        count = rng.randint(0, max_objects + 1)
        xy = rng.uniform(0, 0.85, (count, 2))
        labels[n, :count, 0] = rng.randint(0, 20, count)
        labels[n, :count, 1:3] = xy
        labels[n, :count, 3:5] = np.minimum(xy + rng.uniform(0.03, 0.6, (count, 2)), 1)
        if width > 5:
            labels[n, :count, 5:] = 0
    return labels


def target_cases(rng, count):
    anchors = {size: ssd_anchors(size) for size in (300, 512)}
    params = [dict(), dict(negative_mining_ratio=3), dict(negative_mining_ratio=3, overlap_threshold=0.3,
              negative_mining_thresh=0.4, minimum_negative_samples=5),
              dict(overlap_threshold=0), dict(negative_mining_ratio=2.5, variances=(0.2, 0.3, 0.1, 0.4))]
    for i in range(count):
        kind = i % 4
        if kind == 0:    # SSD300/512 anchors, a real batch, padded label rows
            size, batch = (300, 512)[i // 4 % 2], (1, 8, 32)[i // 8 % 3]
            anchor = anchors[size]
            labels = random_labels(rng, batch, rng.choice([12, 50]), 12)
        elif kind == 1:  # small random sets, ties from duplicated anchors
            anchor = random_anchors(rng, rng.randint(4, 300), duplicates=True)
            labels = random_labels(rng, 3, 8, 8, width=rng.choice([5, 6]))
        elif kind == 2:  # more objects than anchors
            anchor = random_anchors(rng, rng.randint(2, 12))
            labels = random_labels(rng, 2, 30, 30)
        else:            # 1000 label rows, mostly padding
            anchor = random_anchors(rng, 500)
            labels = random_labels(rng, 2, 1000, 40)
        batch, classes = labels.shape[0], rng.randint(2, 22)
        logits = rng.randn(batch, classes, anchor.shape[1])
        if i % 5 == 0:   # quantized logits: equal background probabilities
            logits = np.round(logits)
        dtype = "float64" if i % 7 == 3 else "float32"
        yield "MultiBoxTarget", [anchor, labels, logits], params[i % len(params)], dtype


def detection_cases(rng, count):
    anchors300 = ssd_anchors(300)
    params = [dict(), dict(nms_topk=400, nms_threshold=0.45), dict(force_suppress=True, threshold=0.1),
              dict(nms_topk=5, clip=False), dict(background_id=1, threshold=0.0)]
    for i in range(count):
        if i % 3 == 0:
            anchor, batch = anchors300, (1, 8)[i // 3 % 2]
        else:
            anchor, batch = random_anchors(rng, rng.randint(4, 400), duplicates=i % 2 == 0), 3
        classes = rng.randint(2, 22)
        logits = rng.randn(batch, classes, anchor.shape[1]) * 3
        if i % 4 == 1:
            logits = np.round(logits)  # equal scores: only the stable order decides
        prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loc = rng.randn(batch, anchor.shape[1] * 4) * 0.5
        dtype = "float64" if i % 7 == 5 else "float32"
        yield "MultiBoxDetection", [prob, loc, anchor], params[i % len(params)], dtype


def prior_cases():
    for shape, params in [((1, 3, 38, 38), dict(sizes=(0.1, 0.141), ratios=(1, 2, 0.5))),
                          ((2, 1, 5, 7), dict(sizes=(0.5, 0.3, 0.7), ratios=(1, 3, 1 / 3), clip=True)),
                          ((1, 1, 300, 300), dict(sizes=(0.05,), steps=(0.01, 0.02)))]:
        for dtype in ("float32", "float64"):
            yield "MultiBoxPrior", [np.zeros(shape)], params, dtype


def named_cases():
    """Inputs on which the GPU code used to go wrong (issue #17), each checked like any case."""
    rng = np.random.RandomState(7)
    objects = [[k % 3, 0.1 + 0.012 * k, 0.1, 0.6 + 0.012 * k, 0.62] for k in range(11)]
    many_rows = random_labels(rng, 32, 1000, 40)
    return {
        # 11 objects all overlapping 10 anchors: the 11th has no free anchor (was: written
        # through anchor -1 into the previous image's last anchor).
        "more_objects_than_anchors": ("MultiBoxTarget", [
            np.array([[0.1 + 0.01 * j, 0.1, 0.6 + 0.01 * j, 0.6] for j in range(10)])[None],
            np.array([objects, objects]), rng.randn(2, 4, 10)], dict(negative_mining_ratio=3),
            "float32"),
        # SSD512, batch 32, 1000 label rows (was: batch x rows x anchors IoU scratch, an int
        # byte count that wrapped negative).
        "ssd512_batch32_1000_rows": ("MultiBoxTarget", [
            ssd_anchors(512), many_rows, rng.randn(32, 21, 24564)],
            dict(negative_mining_ratio=3), "float32"),
        # More images than gridDim.y allows (was: one grid row per image).
        "batch_70000_target": ("MultiBoxTarget", [
            random_anchors(rng, 3), random_labels(rng, 70000, 2, 2), rng.randn(70000, 2, 3)],
            dict(negative_mining_ratio=1), "float32"),
        # More label rows than gridDim.y allows (was: a 2-D grid with the rows on y).
        "label_rows_70000": ("MultiBoxTarget", [
            random_anchors(rng, 40), random_labels(rng, 2, 70000, 6), rng.randn(2, 3, 40)],
            dict(negative_mining_ratio=3), "float32"),
        "batch_70000_detection": ("MultiBoxDetection", [
            np.full((70000, 2, 3), 0.5), rng.randn(70000, 12) * 0.1, random_anchors(rng, 3)],
            dict(), "float32"),
    }


def check_malformed_padding():
    """A padding row with other values: the CPU raises; the GPU, which cannot wait to report
    it, returns NaN targets for that image and correct ones for the others."""
    rng = np.random.RandomState(3)
    labels = random_labels(rng, 2, 4, 2)
    labels[1] = -1
    labels[1, 0] = [1, 0.1, 0.1, 0.5, 0.5, 0]
    labels[1, 1] = [-1, 0.2, -1, -1, -1, -1]  # the first padding row ends the objects
    arrays = [random_anchors(rng, 20), labels, rng.randn(2, 3, 20)]
    try:
        run("MultiBoxTarget", arrays, {}, "float32")
        return ["the CPU operator accepted a malformed padding row"]
    except mx.base.MXNetError:
        pass
    good = run("MultiBoxTarget", [arrays[0], labels[:1], arrays[2][:1]], {}, "float32")
    gpu = run("MultiBoxTarget_emulated", arrays, {}, "float32")
    problems = []
    if not all(np.isnan(out[1]).all() for out in gpu):
        problems.append("image 1 (malformed) does not get NaN targets")
    if not all(np.array_equal(g[0], c[0]) for g, c in zip(gpu, good)):
        problems.append("image 0 (valid) differs from the CPU")
    return problems


# Failures injected into every CUDA call kind the operators make (MXSSD_EMU_FAIL, see
# shim/emulation.h): size query and sort, first and a later launch, allocation, an exception.
FAULTS = ("alloc:1", "alloc_throw:1", "sort:1", "sort:2", "launch:1", "launch:6")


def check_faults():
    """Each injected CUDA failure must come back as the operator's own MXNet error (named
    after it), not as a crash, a silent result or the emulation's safety net."""
    target = named_cases()["more_objects_than_anchors"]
    detection = next(detection_cases(np.random.RandomState(1), 1))
    problems = []
    for fault in FAULTS:
        os.environ["MXSSD_EMU_FAIL"] = fault
        for name, arrays, params, dtype in (target, detection):
            try:
                run(name + "_emulated", arrays, params, dtype)
                outcome = "IGNORED: the operator returned without an error"
            except mx.base.MXNetError as error:
                message = str(error).strip().splitlines()[-1]
                reported = name + ": " in message and "not reported by the operator" not in message
                outcome = ("reported: " if reported else "NOT REPORTED BY THE OPERATOR: ") + message
            print("fault %s %s %s" % (fault, name, outcome), flush=True)
            if not outcome.startswith("reported"):
                problems.append(fault)
    del os.environ["MXSSD_EMU_FAIL"]
    return problems


def run(name, arrays, params, dtype):
    outputs = getattr(mx.nd, name)(*[mx.nd.array(a, dtype=dtype) for a in arrays], **params)
    return [o.asnumpy() for o in (outputs if isinstance(outputs, list) else [outputs])]


def compare(case, fills):
    """Mismatch descriptions of one case (empty when CPU and emulated GPU agree)."""
    name, arrays, params, dtype = case
    expected = run(name, arrays, params, dtype)
    problems = []
    for fill in fills:
        os.environ["MXSSD_EMU_FILL"] = fill
        try:
            actual = run(name + "_emulated", arrays, params, dtype)
        except mx.base.MXNetError as error:
            problems.append("fill %s: %s" % (fill, str(error).strip().splitlines()[-1]))
            continue
        for k, (a, b) in enumerate(zip(expected, actual)):
            if not np.array_equal(a, b):
                bad = np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b))))
                problems.append("fill %s: output %d differs at %d places, first %s: cpu %s gpu %s"
                                % (fill, k, len(bad), tuple(bad[0]), a[tuple(bad[0])], b[tuple(bad[0])]))
    return problems


def cases(count, seed=0):
    rng = np.random.RandomState(seed)
    yield from prior_cases()
    yield from target_cases(rng, count)
    yield from detection_cases(rng, max(count // 2, 1))


def main():
    operators.load()   # the CPU twins (named_cases below already runs MultiBoxPrior)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--fills", default="a5,ff,00")
    parser.add_argument("--stop-at-first", action="store_true")
    parser.add_argument("--case", choices=sorted(named_cases()) + ["malformed_padding"],
                        help="run only this named case")
    parser.add_argument("--faults", action="store_true",
                        help="inject CUDA failures (FAULTS) instead of comparing")
    args = parser.parse_args()
    mx.library.load(os.path.abspath(args.library), verbose=False)
    fills, total, failed = args.fills.split(","), 0, 0
    if args.faults:
        problems = check_faults()
        print("%d of %d injected failures reported" % (2 * len(FAULTS) - len(problems), 2 * len(FAULTS)))
        return 1 if problems else 0
    if args.case == "malformed_padding":
        problems = check_malformed_padding()
        print("\n".join("MISMATCH malformed_padding: " + p for p in problems) or "malformed_padding agrees")
        return 1 if problems else 0
    selected = [named_cases()[args.case]] if args.case else cases(args.cases)
    for case in selected:
        total += 1
        problems = compare(case, fills)
        if problems:
            failed += 1
            name, arrays, params, dtype = case
            print("MISMATCH %s(%s, %s) %s: %s" % (name, ", ".join(str(a.shape) for a in arrays),
                                                dtype, params, "; ".join(problems[:3])), flush=True)
            if args.stop_at_first:
                break
    print("%d of %d cases agree (fills %s)" % (total - failed, total, ",".join(fills)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
