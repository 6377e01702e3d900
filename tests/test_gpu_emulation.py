"""The CUDA kernels, run on the CPU through HIP-CPU (tests/gpu_emulation), against the CPU
operators: bit-identical outputs on random and edge inputs for three scratch fill patterns,
the inputs that used to break the GPU code, an AddressSanitizer build, injected GPU bugs
that the comparison must catch, and each former GPU defect of issue #17 put back into today's
code (harness.FORMER_DEFECTS), which its test must then catch.

Skipped (with the reason) where HIP-CPU and hipify-perl are not available: they are looked up
in ../shared/tools/hip-cpu next to the repository, or where $MXSSD_HIP_CPU points.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "gpu_emulation"))
import harness  # noqa: E402

HIP_DIR, SKIP_REASON = harness.hip_cpu_dir()
pytestmark = pytest.mark.skipif(HIP_DIR is None, reason=str(SKIP_REASON))
COMPARE = os.path.join(ROOT, "tests", "gpu_emulation", "compare.py")


def sanitizer_runtime_env():
    """The ASan runtime (and libstdc++, for its exception interceptor) preloaded into python,
    which is not instrumented itself."""
    libs = [subprocess.run(["g++", "-print-file-name=" + name], stdout=subprocess.PIPE,
                           text=True).stdout.strip() for name in ("libasan.so", "libstdc++.so")]
    return {"LD_PRELOAD": " ".join(libs), "ASAN_OPTIONS": "detect_leaks=0"}


def compare(library, *args, env=None, timeout=900):
    """Runs compare.py in a child process; returns (exit status, output)."""
    child_env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="2", **(env or {}))
    proc = subprocess.run([sys.executable, COMPARE, library, *args], cwd=ROOT, env=child_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def plain_library():
    return harness.build("plain")


@pytest.fixture(scope="module")
def mutants_library():
    return harness.build("mutants")


def test_emulated_gpu_matches_cpu_on_random_inputs(plain_library):
    status, output = compare(plain_library, "--cases", "24", "--fills", "a5,ff,00")
    assert status == 0 and "42 of 42 cases agree" in output, output[-3000:]


@pytest.mark.parametrize("case", ["more_objects_than_anchors", "ssd512_batch32_1000_rows",
                                  "batch_70000_target", "batch_70000_detection",
                                  "label_rows_70000", "malformed_padding"])
def test_emulated_gpu_former_defects(plain_library, case):
    status, output = compare(plain_library, "--case", case, "--fills", "a5,00")
    assert status == 0 and "agree" in output and "MISMATCH" not in output, output[-3000:]


@pytest.fixture(scope="module")
def asan_library():
    return harness.build("asan")


def test_emulated_gpu_under_address_sanitizer(asan_library):
    library = asan_library
    status, output = compare(library, "--cases", "8", "--fills", "a5", env=sanitizer_runtime_env())
    assert status == 0 and "of 18 cases agree" in output and "AddressSanitizer" not in output, \
        output[-3000:]
    assert "18 of 18" in output, output[-3000:]


def test_mutants_build_is_correct_without_a_mutation(mutants_library):
    status, output = compare(mutants_library, "--cases", "8", "--fills", "a5")
    assert status == 0 and "18 of 18 cases agree" in output, output[-3000:]


@pytest.mark.parametrize("number", sorted(harness.MUTANTS), ids=lambda n: harness.MUTANTS[n][0])
def test_injected_gpu_bug_is_caught(mutants_library, number):
    status, output = compare(mutants_library, "--cases", "12", "--fills", "a5,ff,00",
                             "--stop-at-first", env={"MXSSD_EMU_MUTANT": str(number)})
    assert status == 1 and "MISMATCH" in output, output[-3000:]


def test_uninitialised_scratch_needs_a_nonzero_fill(mutants_library):
    # The counter the mutant leaves uninitialised reads as 0 from zeroed memory: only the
    # other fill patterns expose it.
    env = {"MXSSD_EMU_MUTANT": "6"}
    assert compare(mutants_library, "--cases", "8", "--fills", "00", env=env)[0] == 0
    assert compare(mutants_library, "--cases", "8", "--fills", "a5", env=env)[0] == 1


# Former GPU defect (issue #17) -> its mutant (harness.FORMER_DEFECTS), the case of
# test_emulated_gpu_former_defects that must then fail, and what the failure must show (the
# check that caught it).
FORMER_DEFECT_CASES = [
    (8, "ssd512_batch32_1000_rows", "alloc_gpu(-"),   # the wrapped int byte count
    (9, "label_rows_70000", "launch outside CUDA's limits (grid 2x70000x1"),
    (10, "more_objects_than_anchors", "hipMalloc (memory outside MXNet's allocator)"),
    (11, "more_objects_than_anchors", "hipMemcpyAsync (a copy the host waits for)"),
]


@pytest.mark.parametrize("number,case,evidence", FORMER_DEFECT_CASES,
                         ids=[harness.FORMER_DEFECTS[n][0] for n, _, _ in FORMER_DEFECT_CASES])
def test_former_gpu_defect_fails_its_test(mutants_library, number, case, evidence):
    status, output = compare(mutants_library, "--case", case, "--fills", "a5",
                             env={"MXSSD_EMU_MUTANT": str(number)})
    assert status == 1 and "MISMATCH" in output and evidence in output, output[-3000:]


def test_bipartite_step_through_anchor_minus_one_is_caught_by_address_sanitizer(asan_library):
    # With no free anchor left the defect reads anchor -1 (before the anchors input) and, if
    # that overlaps, writes into the previous image: only the sanitizer sees every instance.
    env = sanitizer_runtime_env()
    args = ("--case", "more_objects_than_anchors", "--fills", "a5")
    status, output = compare(asan_library, *args, env=env)
    assert status == 0 and "AddressSanitizer" not in output, output[-3000:]
    status, output = compare(asan_library, *args, env=dict(env, MXSSD_EMU_MUTANT="7"))
    assert status != 0 and "AddressSanitizer: heap-buffer-overflow" in output, output[-3000:]


def test_cuda_failures_become_the_operators_mxnet_errors(plain_library):
    status, output = compare(plain_library, "--faults")
    assert status == 0 and "12 of 12 injected failures reported" in output, output[-3000:]


@pytest.mark.parametrize("number,evidence", [
    (12, "fault sort:2 MultiBoxTarget IGNORED"),
    (13, "fault alloc_throw:1 MultiBoxTarget NOT REPORTED BY THE OPERATOR")],
    ids=[harness.FORMER_DEFECTS[n][0] for n in (12, 13)])
def test_unchecked_cuda_failure_fails_the_fault_test(mutants_library, number, evidence):
    status, output = compare(mutants_library, "--faults", env={"MXSSD_EMU_MUTANT": str(number)})
    assert status == 1 and evidence in output, output[-3000:]
