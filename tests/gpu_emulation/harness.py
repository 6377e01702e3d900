"""Builds the project's CUDA kernels for the CPU: the emulated GPU operators.

The unchanged ``operator/*.cu`` sources are hipified with ``hipify-perl``, their kernel
launches are rewritten to go through the checks of ``shim/emulation.h`` (HIP-CPU has no
``<<<>>>`` and enforces none of CUDA's launch limits), and everything is compiled with g++
against HIP-CPU, a header-only HIP runtime that runs kernels on CPU fibers.  The library
registers ``MultiBoxPrior_emulated``, ``MultiBoxTarget_emulated`` and
``MultiBoxDetection_emulated``: CPU operators whose forward is the GPU entry point
(``*_forward_gpu``), to be compared with the CPU operators (tests/gpu_emulation/compare.py).

HIP-CPU and hipify-perl are third-party tools used where they are, from
``../shared/tools/hip-cpu`` next to the repository or from ``$MXSSD_HIP_CPU``.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCE_DIR = os.path.join(ROOT, "operator")
SHIM_DIR = os.path.join(HERE, "shim")
BUILD_ROOT = os.path.join(SOURCE_DIR, "build", "emulation")
LIBRARY_NAME = "libmxnet_ssd_emulated.so"
HIP_CPU_ENV = "MXSSD_HIP_CPU"

# AddressSanitizer needs stack instrumentation off: HIP-CPU's fibers switch stacks under it.
ASAN_FLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer", "--param", "asan-stack=0",
              "--param", "asan-use-after-return=0"]
CXX_FLAGS = ["-std=c++17", "-O1", "-fPIC", "-pthread", "-fopenmp", "-ffp-contract=off", "-w",
             "-DMXSSD_WITH_CUDA=1", "-DMXSSD_EMULATED_GPU=1"]

# Injected GPU bugs, each switched on at run time by MXSSD_EMU_MUTANT=<number> in the
# "mutants" build: number -> (what, [(file, text in the source, replacement), ...]).  The
# comparison of random cases must fail on each.
MUTANTS = {
    1: ("missing __syncthreads in the block reduction", [("multibox_target.cu",
        "      }\n    }\n    __syncthreads();\n  }\n  int result = s_idx[0];",
        "      }\n    }\n    if (mxssd_emu::mutant() != 1) __syncthreads();\n  }\n"
        "  int result = s_idx[0];")]),
    2: ("off-by-one in the number of mined negatives", [("multibox_target.cu",
        "if (i < count) flag[b.rank.order[a]] = kNegative;",
        "if (i < count + (mxssd_emu::mutant() == 2)) flag[b.rank.order[a]] = kNegative;")]),
    3: ("reversed tie-break of the best free anchor", [("multibox_target.cu",
        "(s_val[o] == s_val[threadIdx.x] && s_idx[o] < s_idx[threadIdx.x])",
        "(s_val[o] == s_val[threadIdx.x] && (mxssd_emu::mutant() == 3 ? s_idx[o] > s_idx[threadIdx.x]"
        " : s_idx[o] < s_idx[threadIdx.x]))")]),
    4: ("too-small sort scratch", [("cuda_common.cuh",
        "temp = arena->take<char>(temp_bytes);",
        "temp = arena->take<char>(temp_bytes / (mxssd_emu::mutant() == 4 ? 2 : 1));")]),
    5: ("a kernel launched on another stream", [("multibox_detection.cu",
        "compact_kernel<<<d.batch, 32, 0, stream>>>",
        "compact_kernel<<<d.batch, 32, 0, mxssd_emu::mutant() == 5 ? nullptr : stream>>>")]),
    6: ("scratch counter left uninitialised", [("multibox_target.cu",
        "    b.num_candidates[n] = 0;",
        "    if (mxssd_emu::mutant() != 6) b.num_candidates[n] = 0;")]),
}

# The former GPU defects of issue #17, each put back into today's code (same switch, same
# build): the test of that defect (tests/test_gpu_emulation.py) must fail on it.  A header
# is mutated only in the emulated build's copy; the CPU reference comes from the normal
# library and stays correct.
FORMER_DEFECTS = {
    7: ("bipartite step without the no-free-anchor skip (writes through anchor -1)", [
        ("multibox_target.h", "if (gt_matched[k] || j < 0) continue;",
         "if (gt_matched[k] || (j < 0 && mxssd_emu::mutant() != 7)) continue;")]),
    8: ("IoU scratch of batch x label rows x anchors, its byte count passed on as an int", [
        ("multibox_target.cu", "  b->rank.take(arena, d.batch, d.num_anchors);\n}",
         "  b->rank.take(arena, d.batch, d.num_anchors);\n"
         "  if (mxssd_emu::mutant() == 8) arena->take<DType>(per_label * d.num_anchors);\n}"),
        ("cuda_common.cuh", "if (sizing.used() > size_t(INT_MAX)) {",
         "if (mxssd_emu::mutant() != 8 && sizing.used() > size_t(INT_MAX)) {")]),
    9: ("a 2-D grid with the label rows on gridDim.y", [
        ("multibox_target.cu", "init_kernel<<<d.batch, kThreads, 0, stream>>>",
         "init_kernel<<<dim3(d.batch, mxssd_emu::mutant() == 9 ? d.num_labels : 1), kThreads, 0, "
         "stream>>>")]),
    10: ("one sort per image with its own allocation and a stream wait (the Thrust loop)", [
        ("cuda_common.cuh", "  cudaError_t run(cudaStream_t stream) {\n",
         "  cudaError_t run(cudaStream_t stream) {\n"
         "    if (mxssd_emu::mutant() == 10 && temp) {\n"
         "      for (int s = 0; s < num_segments; ++s) {\n"
         "        size_t own_bytes = 0;\n"
         "        void* own = nullptr;\n"
         "        cub::DeviceSegmentedRadixSort::SortPairs(nullptr, own_bytes, keys_in, keys_out,"
         " values_in, values_out, num_items, 1, offsets + s, offsets + s + 1, 0,"
         " int(sizeof(DType) * 8), stream);\n"
         "        cudaMalloc(&own, own_bytes);\n"
         "        cub::DeviceSegmentedRadixSort::SortPairs(own, own_bytes, keys_in, keys_out,"
         " values_in, values_out, num_items, 1, offsets + s, offsets + s + 1, 0,"
         " int(sizeof(DType) * 8), stream);\n"
         "        cudaStreamSynchronize(stream);\n"
         "        cudaFree(own);\n"
         "      }\n"
         "      return cudaSuccess;\n"
         "    }\n")]),
    11: ("a pageable device-to-host copy and stream wait for the padding check", [
        ("multibox_target.cu", "  bipartite_kernel<<<",
         "  if (mxssd_emu::mutant() == 11) {\n"
         "    std::vector<int> bad_row(d.batch, -1);\n"
         "    cudaMemcpyAsync(bad_row.data(), b.bad_row, d.batch * sizeof(int),"
         " cudaMemcpyDeviceToHost, stream);\n"
         "    cudaStreamSynchronize(stream);\n"
         "    for (int n = 0; n < d.batch; ++n) {\n"
         "      if (bad_row[n] >= 0) return fail(kTargetOp, \"malformed padding row\");\n"
         "    }\n"
         "  }\n"
         "  bipartite_kernel<<<")]),
    12: ("the sort's CUDA result ignored", [
        ("multibox_target.cu", "!cuda_ok(kTargetOp, b.rank.sort(d.batch, d.num_anchors).run(stream))",
         "!cuda_ok(kTargetOp, mxssd_emu::mutant() == 12 ? (b.rank.sort(d.batch, d.num_anchors)"
         ".run(stream), cudaSuccess) : b.rank.sort(d.batch, d.num_anchors).run(stream))")]),
    13: ("C++ exceptions left to cross MXNet's C interface", [
        ("cuda_common.cuh", "  try {\n    return forward();",
         "  if (mxssd_emu::mutant() == 13) return forward();\n  try {\n    return forward();")]),
}
VARIANTS = ("plain", "asan", "mutants")
# Variants that carry the mutants (all off unless MXSSD_EMU_MUTANT is set): the ASan build
# too, for a defect that only an out-of-bounds access shows.
MUTATED_VARIANTS = ("mutants", "asan")


def hip_cpu_dir():
    """(folder holding HIP-CPU/ and hipify-perl, None) or (None, why it is unusable)."""
    candidates = [os.path.join(base, "shared", "tools", "hip-cpu")
                  for base in (os.path.dirname(ROOT), ROOT)]
    folder = os.environ.get(HIP_CPU_ENV) or next(
        (path for path in candidates if os.path.isdir(path)), candidates[0])
    needed = [os.path.join(folder, "HIP-CPU", "include", "hip", "hip_runtime.h"),
              os.path.join(folder, "hipify-perl")]
    missing = [path for path in needed if not os.path.exists(path)]
    if missing:
        return None, "HIP-CPU/hipify-perl not found (%s missing; set $%s)" % (missing[0],
                                                                             HIP_CPU_ENV)
    if not shutil.which("perl"):
        return None, "perl (for hipify-perl) is not installed"
    return folder, None


def rewrite_launches(text):
    """``kernel<<<config>>>(args);`` -> ``MXSSD_EMU_LAUNCH(kernel, config, args);``."""
    out, pos = [], 0
    for match in re.finditer(r"(\w+)\s*<<<", text):
        if match.start() < pos:
            continue
        end_config = text.index(">>>", match.end())
        open_paren = text.index("(", end_config)
        depth, i = 0, open_paren
        while True:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        config = text[match.end():end_config].strip()
        args = text[open_paren + 1:i].strip()
        out.append(text[pos:match.start()])
        out.append("MXSSD_EMU_LAUNCH(%s, %s%s)" % (match.group(1), config,
                                                   ", " + args if args else ""))
        pos = i + 1
    out.append(text[pos:])
    return "".join(out)


def mutate(name, text):
    """`text` of source file `name` with every mutant's edits of that file."""
    for number, (what, edits) in {**MUTANTS, **FORMER_DEFECTS}.items():
        for file, old, new in edits:
            if file == name:
                if old not in text:
                    raise RuntimeError("mutant %d (%s): text not found in %s" % (number, what, name))
                text = text.replace(old, new, 1)
    return text


def prepare_sources(dest, hip_dir, mutants=False):
    """Copies the C++ sources and the hipified, launch-rewritten CUDA sources into `dest`
    (with the mutants' edits in the "mutants" build)."""
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(SOURCE_DIR)):
        if not name.endswith((".h", ".cc", ".cu", ".cuh")):
            continue
        text = open(os.path.join(SOURCE_DIR, name)).read()
        if mutants:
            text = mutate(name, text)
        target = name
        if name.endswith((".cu", ".cuh")):
            staged = os.path.join(dest, name + ".staged")
            with open(staged, "w") as f:
                f.write(text)
            text = rewrite_launches(subprocess.run(
                ["perl", os.path.join(hip_dir, "hipify-perl"), staged], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, check=True).stdout)
            os.remove(staged)
            target = name + ".cc" if name.endswith(".cu") else name
        with open(os.path.join(dest, target), "w") as f:
            f.write(text)


def _inputs_digest(flags):
    digest = hashlib.sha256(json.dumps(flags).encode())
    for folder in (SOURCE_DIR, SHIM_DIR, os.path.join(SHIM_DIR, "cub", "device")):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                digest.update(name.encode())
                digest.update(open(path, "rb").read())
    digest.update(open(__file__, "rb").read())
    return digest.hexdigest()


def build(variant="plain", verbose=True, jobs=2):
    """Builds (when stale) the emulated library of `variant`; returns its path."""
    import mxnet as mx  # the wheel's lib_api.h / lib_api.cc

    hip_dir, why = hip_cpu_dir()
    if hip_dir is None:
        raise RuntimeError(why)
    mxnet_dir = os.path.dirname(mx.__file__)
    out_dir = os.path.join(BUILD_ROOT, variant)
    library = os.path.join(out_dir, LIBRARY_NAME)
    flags = CXX_FLAGS + (ASAN_FLAGS if variant == "asan" else [])
    digest = _inputs_digest(flags + [variant, hip_dir, mxnet_dir])
    stamp = library + ".digest"
    if os.path.exists(library) and os.path.exists(stamp) and open(stamp).read() == digest:
        return library
    src = os.path.join(out_dir, "src")
    shutil.rmtree(src, ignore_errors=True)
    prepare_sources(src, hip_dir, mutants=variant in MUTATED_VARIANTS)
    units = sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".cc"))
    units += [os.path.join(SHIM_DIR, "emulation_runtime.cc"), os.path.join(mxnet_dir, "src", "lib_api.cc")]
    includes = ["-include", os.path.join(SHIM_DIR, "emulation.h"), "-I", SHIM_DIR,
                "-I", os.path.join(hip_dir, "HIP-CPU", "include"), "-I", src,
                "-I", os.path.join(mxnet_dir, "include")]
    if verbose:
        print("building emulated GPU operators (%s, %d units): %s" % (variant, len(units), library),
              file=sys.stderr)

    # What every unit depends on besides its own text: flags, tools, shim and copied headers.
    headers = hashlib.sha256(json.dumps(flags + [hip_dir, mxnet_dir]).encode())
    for folder in (SHIM_DIR, os.path.join(SHIM_DIR, "cub", "device"), src):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not name.endswith(".cc"):
                headers.update(open(path, "rb").read())

    def compile_unit(unit):
        """Compiles one unit unless its object was built from the same text and headers."""
        obj = os.path.join(out_dir, os.path.basename(unit) + ".o")
        unit_digest = hashlib.sha256(headers.hexdigest().encode() + open(unit, "rb").read()).hexdigest()
        if os.path.exists(obj + ".digest") and open(obj + ".digest").read() == unit_digest:
            return obj
        _run(["g++", *flags, *includes, "-c", unit, "-o", obj])
        with open(obj + ".digest", "w") as f:
            f.write(unit_digest)
        return obj

    with ThreadPoolExecutor(jobs) as pool:
        objects = list(pool.map(compile_unit, units))
    _run(["g++", *flags, "-shared", *objects, "-o", library + ".partial"])
    os.replace(library + ".partial", library)
    with open(stamp, "w") as f:
        f.write(digest)
    return library


def _run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(cmd),
                                                          proc.stdout[-6000:]))


if __name__ == "__main__":
    for name in sys.argv[1:] or ["plain"]:
        print(build(name))
