"""Timing helpers shared by the benchmarks: thread set-up for every framework, interleaved
median timing, machine load, and plain-text tables."""
import os
import statistics
import time

from tqdm import tqdm

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
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    return int(os.environ["OMP_NUM_THREADS"])


def load_average():
    """The 1-minute load average as text (other processes share the CPU on a busy machine)."""
    return "%.2f" % os.getloadavg()[0]


def interleaved_medians(runs, rounds, warmup=1, desc="timing"):
    """Median seconds of each callable in ``runs`` (name -> fn), in the order given.  Every
    round calls each runner once, so a burst of load from other processes hits all of them
    alike instead of the one that happened to be running; the order rotates from round to
    round, so no runner always follows the same other one (whose idle threads may still be
    spinning)."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    names = list(runs)
    times = {name: [] for name in names}
    for round_index in tqdm(range(rounds), desc=desc, unit="round", leave=False):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
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
