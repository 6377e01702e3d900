"""The MultiBox operators never crash the process: every call returns or raises MXNetError.

Each call runs in a child process (tests/operator_child.py), so a segfault or a hang is a
test failure that names the input instead of a dead test run.
"""
import os
import subprocess
import sys
import textwrap

import pytest

import operator_child  # tests/ is on sys.path (pytest rootdir-relative import)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "tests", "operator_child.py")
NUM_CASES = 150
CASES_PER_CHILD = 50


def child_env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def run_python(code, timeout=120):
    """Runs `code` in a fresh interpreter; returns (exit status, combined output)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=child_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout


def run_cases(seeds, timeout=300):
    """Runs the cases of `seeds` in one child; returns ({seed: result}, crashed seed or None,
    child output)."""
    try:
        proc = subprocess.run([sys.executable, CHILD, *map(str, seeds)], cwd=ROOT,
                              env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        output, status = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as timeout_error:
        output, status = (timeout_error.output or b"").decode(errors="replace"), "timeout"
    results, started = {}, None
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "start":
            started = int(words[1])
        elif len(words) == 3 and words[0] == "done":
            results[int(words[1])] = words[2]
            started = None
    crashed = started if started is not None or status != 0 else None
    return results, crashed, output


def test_target_more_objects_than_anchors_matches_contrib():
    # 11 objects overlapping all 10 anchors: once every anchor is taken, the remaining object
    # has no free anchor; it used to be matched to anchor -1 (a heap write, then a segfault).
    status, output = run_python("""
        import mxnet as mx, numpy as np
        from symbol import operators; operators.load()
        anchors = [[0.1 + 0.01 * j, 0.1, 0.6 + 0.01 * j, 0.6] for j in range(10)]
        labels = [[k % 3, 0.1 + 0.012 * k, 0.1, 0.6 + 0.012 * k, 0.62] for k in range(11)]
        cls_pred = np.random.RandomState(0).randn(1, 4, 10)
        args = [mx.nd.array(anchors)[None], mx.nd.array(labels)[None], mx.nd.array(cls_pred)]
        for params in [dict(), dict(negative_mining_ratio=3), dict(overlap_threshold=0.9)]:
            for _ in range(5):
                ours = mx.nd.MultiBoxTarget(*args, **params)
                theirs = mx.nd.contrib.MultiBoxTarget(*args, **params)
                for a, b in zip(ours, theirs):
                    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
        print("same as contrib")
    """)
    assert status == 0 and "same as contrib" in output, output


def test_random_inputs_never_crash_the_operators():
    seeds = list(range(NUM_CASES))
    failures, outcomes = [], {"ok": 0, "MXNetError": 0}
    while seeds:
        batch, seeds = seeds[:CASES_PER_CHILD], seeds[CASES_PER_CHILD:]
        results, crashed, output = run_cases(batch)
        for result in results.values():
            outcomes[result] += 1
        if crashed is not None:
            failures.append("case %d crashed: %s\n%s" % (crashed, operator_child.describe(crashed),
                                                         output[-2000:]))
            seeds = [s for s in batch if s not in results and s != crashed] + seeds
    assert not failures, "\n".join(failures)
    # The generator reaches both sides: valid inputs that run and bad ones that are refused.
    assert outcomes["ok"] > NUM_CASES // 5 and outcomes["MXNetError"] > NUM_CASES // 10, outcomes
