/*
 * Small helpers shared by the CUDA kernels.
 */
#ifndef MXSSD_CUDA_COMMON_CUH_
#define MXSSD_CUDA_COMMON_CUH_

#include <cuda_runtime.h>

#include <string>

#include "multibox_params.h"

namespace mxssd {

constexpr int kThreads = 256;

inline int blocks_for(long long n) { return int((n + kThreads - 1) / kThreads); }

/* Returns false (after reporting the CUDA error for `op`) when the last launch failed. */
inline bool cuda_ok(const char* op, cudaError_t status) {
  if (status == cudaSuccess) return true;
  fail(op, std::string("CUDA error: ") + cudaGetErrorString(status));
  return false;
}

template <typename DType>
__global__ void fill_kernel(DType* data, long long n, DType value) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) data[i] = value;
}

template <typename DType>
void fill_async(DType* data, long long n, DType value, cudaStream_t stream) {
  if (n > 0) fill_kernel<<<blocks_for(n), kThreads, 0, stream>>>(data, n, value);
}

/* Scratch memory from MXNet's GPU allocator, carved into typed arrays in order. */
class ScratchArena {
 public:
  ScratchArena(const OpResource& res, size_t bytes)
      : base_(static_cast<char*>(res.alloc_gpu(int(bytes)))), used_(0) {}
  template <typename T>
  T* take(size_t count) {
    used_ = (used_ + 255) / 256 * 256;  // keep every array aligned
    T* ptr = reinterpret_cast<T*>(base_ + used_);
    used_ += count * sizeof(T);
    return ptr;
  }
  static size_t padded(size_t bytes) { return (bytes + 255) / 256 * 256; }

 private:
  char* base_;
  size_t used_;
};

}  // namespace mxssd

#endif  // MXSSD_CUDA_COMMON_CUH_
