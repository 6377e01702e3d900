/*
 * Included before every hipified CUDA source of the emulated GPU build (tests/gpu_emulation):
 * what HIP-CPU does not check or provide, so that GPU-only mistakes fail on a CPU.
 *  - kernel launches go through MXSSD_EMU_LAUNCH, which enforces CUDA's launch limits and
 *    that work is queued on the stream MXNet handed to the operator;
 *  - hipMemsetAsync and hipPeekAtLastError are wrapped for the same stream and error checks;
 *  - cub::DeviceSegmentedRadixSort comes from shim/cub/ (CUB's order, host sort);
 *  - host waits and allocations outside MXNet's allocator are errors;
 *  - MXSSD_EMU_FAIL=<api>:<n> makes the n-th call of `api` in every forward fail, to test
 *    that the operator reports it as an MXNet error: alloc (alloc_gpu returns null),
 *    alloc_throw (alloc_gpu throws std::bad_alloc), launch (a kernel launch fails, seen by
 *    cudaPeekAtLastError) or sort (cub's SortPairs returns an error, size queries count).
 */
#ifndef MXSSD_EMULATION_H_
#define MXSSD_EMULATION_H_

#include <hip/hip_runtime.h>

#include <cmath>
#include <cstddef>

namespace mxssd_emu {

/* The only stream the emulated operators may use (what OpResource::get_cuda_stream returns). */
hipStream_t operator_stream();

/* Records a launch/stream error for hipPeekAtLastError; false when the launch must not run. */
bool check_launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes,
                  hipStream_t stream);
bool check_stream(const char* call, hipStream_t stream);
hipError_t peek_error();
/* False (and a recorded error) unless [ptr, ptr + bytes) lies inside one scratch block that
 * the operator got from OpResource::alloc_gpu: a too-small block fails here, not by luck. */
bool check_scratch(const void* ptr, size_t bytes, const char* what);
/* Records that the operator called `what`, which it must not; returns an error. */
hipError_t forbidden(const char* what);

/* True when the current call of `api` is the one MXSSD_EMU_FAIL says must fail. */
bool injected_failure(const char* api);

/* Mutation switch of the bug-injection build (MXSSD_EMU_MUTANT; 0 = none). */
int mutant();

inline hipError_t memset_async(void* data, int value, size_t bytes, hipStream_t stream) {
  if (!check_stream("hipMemsetAsync", stream)) return hipErrorInvalidValue;
  return hipMemset(data, value, bytes);
}

}  // namespace mxssd_emu

// HIP-CPU runs every queued launch on the null stream; operator_stream() is only a token.
#define MXSSD_EMU_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                  \
  do {                                                                                  \
    if (mxssd_emu::check_launch(#kernel, dim3(grid), dim3(block), shared_bytes, stream)) { \
      hipLaunchKernelGGL(kernel, dim3(grid), dim3(block), shared_bytes, nullptr,          \
                         __VA_ARGS__);                                                  \
      (void)hipDeviceSynchronize();                                                     \
    }                                                                                   \
  } while (0)

#define hipMemsetAsync mxssd_emu::memset_async
#define hipPeekAtLastError mxssd_emu::peek_error
// An operator must not wait for the GPU: MXNet's engine runs it asynchronously.
#define hipStreamSynchronize(...) mxssd_emu::forbidden("hipStreamSynchronize")
#define hipMemcpy(...) mxssd_emu::forbidden("hipMemcpy")
#define hipMemcpyAsync(...) mxssd_emu::forbidden("hipMemcpyAsync (a copy the host waits for)")
// Nor allocate or free outside MXNet's allocator (OpResource::alloc_gpu): cudaMalloc/cudaFree
// synchronise the device.
#define hipMalloc(...) mxssd_emu::forbidden("hipMalloc (memory outside MXNet's allocator)")
#define hipFree(...) mxssd_emu::forbidden("hipFree (memory outside MXNet's allocator)")

#endif  // MXSSD_EMULATION_H_
