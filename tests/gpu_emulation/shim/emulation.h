/*
 * Included before every hipified CUDA source of the emulated GPU build (tests/gpu_emulation):
 * what HIP-CPU does not check or provide, so that GPU-only mistakes fail on a CPU.
 *  - kernel launches go through MXSSD_EMU_LAUNCH, which enforces CUDA's launch limits and
 *    that work is queued on the stream MXNet handed to the operator;
 *  - hipMemsetAsync and hipPeekAtLastError are wrapped for the same stream and error checks;
 *  - cub::DeviceSegmentedRadixSort comes from shim/cub/ (CUB's order, host sort).
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

#endif  // MXSSD_EMULATION_H_
