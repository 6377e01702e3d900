"""bench/timing.py: a turn times several calls of a fast runner and drops the first (the switch
from another runtime), one call of a slow one; rounds rotate the order.  A fake clock stands in
for time, so nothing here depends on the machine's speed."""
import pytest

from bench import timing


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", fake)
    return fake


def runner(clock, first, then, log=None, name=None):
    """A run() taking ``first`` seconds on its first call, ``then`` on every later one.
    (Powers of two: the sums are exact.)"""
    calls = []

    def run():
        clock.now += then if calls else first
        calls.append(name)
        if log is not None:
            log.append(name)
    return run


def test_fast_runner_turn_drops_the_first_call(clock):
    run = runner(clock, 2 ** -4, 2 ** -7)
    times = timing.timed_turn(run, 2 ** -3)
    assert times == [2 ** -7] * 8  # 1/16 + 8 x 1/128 reaches 1/8 s; the 1/16 s switch dropped


def test_slow_runner_gets_one_call(clock):
    run = runner(clock, 2 ** -2, 2 ** -2)
    assert timing.timed_turn(run, 2 ** -3) == [2 ** -2]


def test_two_calls_are_both_kept(clock):
    run = runner(clock, 2 ** -4, 2 ** -4)
    assert timing.timed_turn(run, 2 ** -3) == [2 ** -4] * 2


def test_medians_per_call_and_rotating_order(clock):
    log = []
    fast = runner(clock, 2 ** -2, 2 ** -7, log, "fast")  # a slow first call, then fast
    slow = runner(clock, 2 ** -2, 2 ** -2, log, "slow")
    medians = timing.interleaved_medians({"fast": fast, "slow": slow}, rounds=2, warmup=0,
                                         min_turn=2 ** -3)
    # round 1: fast (its first call fills the turn), slow; round 2: slow, then fast: 16 calls
    # of 1/128 s, the first dropped
    assert log == ["fast", "slow", "slow"] + ["fast"] * 16
    assert medians == {"fast": 2 ** -7, "slow": 2 ** -2}
