#!/usr/bin/env bash
# Builds the standalone GPU check (device_check.cc + operator/ sources, nvcc) and runs it:
#   bash operator/device_check/run.sh               GPU vs CPU table, then compute-sanitizer
#   bash operator/device_check/run.sh --self-test   CPU-only self-test (no GPU needed)
# Needs nvcc and the mxnet wheel's lib_api (python -c 'import mxnet'); no MXNet GPU build.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=operator/build/device_check
mkdir -p "$out"
mxnet_dir=$(python -c 'import os, mxnet; print(os.path.dirname(mxnet.__file__))')
cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}
[ -e "$cuda_home/include/cuda_runtime.h" ] || cuda_home=/usr/local/cuda
# The attached GPU's architecture when there is one, else the newest from build_ops' list.
if nvidia-smi >/dev/null 2>&1; then arch=(-arch=native); else arch=(-gencode=arch=compute_90,code=sm_90); fi
common=(-DMXSSD_WITH_CUDA=1 -I "$mxnet_dir/include" -I operator)
start=$(date +%s)
pids=()
for cu in operator/*.cu; do
  obj="$out/$(basename "$cu").o"
  # Rebuilt only when a source or header changed (the arch flags are fixed per machine).
  if [ -e "$obj" ] && [ -z "$(find operator -maxdepth 1 -newer "$obj" \( -name '*.cu' -o -name '*.h' -o -name '*.cuh' \))" ]; then
    continue
  fi
  nvcc -std=c++17 -O3 -Xcompiler -fPIC -fmad=false "${arch[@]}" "${common[@]}" \
    -Xcompiler -idirafter,operator/cuda_fallback -c "$cu" -o "$obj" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
g++ -std=c++17 -O2 -fopenmp -ffp-contract=off "${common[@]}" -I "$cuda_home/include" \
  operator/*.cc "$mxnet_dir/src/lib_api.cc" operator/device_check/device_check.cc "$out"/*.cu.o \
  -L "$cuda_home/lib64" -lcudart_static -ldl -lrt -lpthread -o "$out/device_check"
echo "built $out/device_check in $(( $(date +%s) - start )) s"
if [ "${1:-}" = "--self-test" ]; then exec "$out/device_check" --self-test; fi
"$out/device_check"
if command -v compute-sanitizer >/dev/null 2>&1; then
  echo "== compute-sanitizer (memcheck, quick cases)"
  compute-sanitizer --tool memcheck --error-exitcode 3 "$out/device_check" --quick
  echo "== compute-sanitizer (racecheck, quick cases)"
  compute-sanitizer --tool racecheck --error-exitcode 3 "$out/device_check" --quick
else
  echo "compute-sanitizer not found: skipped"
fi
