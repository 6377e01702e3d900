"""Timing helpers shared by the benchmarks: thread set-up for every framework, interleaved
median timing, machine load, and plain-text tables."""
import os
import statistics
import time

from tqdm import tqdm

from config.threads import set_default_threads

THREADS_FLAG = "--threads"


def configure_threads(argv):
    """Set OMP_NUM_THREADS from ``--threads N`` in ``argv`` (else keep the user's value, else
    all cores) and return it.  Must run before mxnet is imported: MXNet reads it once."""
    value = None
    for i, arg in enumerate(argv):
        if arg == THREADS_FLAG and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(THREADS_FLAG + "="):
            value = arg.split("=", 1)[1]
    if value is not None and int(value) > 0:
        os.environ["OMP_NUM_THREADS"] = str(int(value))
    return set_default_threads()


def load_average():
    """The 1-minute load average as text (other processes share the CPU on a busy machine)."""
    return "%.2f" % os.getloadavg()[0]


# A runtime's turn lasts at least this long.  Each runtime leaves worker threads spinning or
# waking after its call, which the next runtime's first call pays; on a model of a few ms per
# image that decided the times (the shipped MobileNet: ONNX Runtime fp32 3.1-6.6 ms, ours
# 6.0-10.6 ms over four one-call-per-turn runs).  Turns of several calls, the first one
# dropped, time each runtime as it runs on its own; a 100+ ms model still gets one call.
MIN_TURN_SECONDS = 0.1


def timed_turn(run, min_seconds=MIN_TURN_SECONDS):
    """Seconds of each call of ``run`` in one turn of at least ``min_seconds``; of three or
    more calls the first (the switch from another runtime) is dropped."""
    times, start = [], time.perf_counter()
    while not times or time.perf_counter() - start < min_seconds:
        call = time.perf_counter()
        run()
        times.append(time.perf_counter() - call)
    return times[1:] if len(times) >= 3 else times


def interleaved_medians(runs, rounds, warmup=1, desc="timing", min_turn=MIN_TURN_SECONDS):
    """Median seconds per call of each callable in ``runs`` (name -> fn), in the order given.
    Every round gives each runner one turn (:func:`timed_turn`), so a burst of load from other
    processes hits all of them alike instead of the one that happened to be running; the order
    rotates from round to round, so no runner always follows the same other one."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    names = list(runs)
    times = {name: [] for name in names}
    for round_index in tqdm(range(rounds), desc=desc, unit="round", leave=False):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name] += timed_turn(runs[name], min_turn)
    return {name: statistics.median(times[name]) for name in names}


def format_table(header, rows):
    """Left-aligned first column, right-aligned others, widths from the content."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(row, widths)))
    rule = "-" * len(line(cells[0]))
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])
