/*
 * Small helpers shared by the CUDA kernels: launch sizes, CUDA error reporting, scratch memory
 * from MXNet's allocator and the segmented sort.
 */
#ifndef MXSSD_CUDA_COMMON_CUH_
#define MXSSD_CUDA_COMMON_CUH_

#include <cuda_runtime.h>

#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>
#include <exception>
#include <string>

#include "multibox_params.h"

namespace mxssd {

constexpr int kThreads = 256;

/* One thread per item over a 1-D grid (gridDim.x allows 2^31 - 1 blocks; y and z only 65535). */
inline unsigned blocks_for(long long n) { return unsigned((n + kThreads - 1) / kThreads); }

__device__ inline long long global_index() {
  return blockIdx.x * (long long)blockDim.x + threadIdx.x;
}

/* Returns false (after reporting the CUDA error for `op`) unless `status` is cudaSuccess. */
inline bool cuda_ok(const char* op, cudaError_t status) {
  if (status == cudaSuccess) return true;
  fail(op, std::string("CUDA error: ") + cudaGetErrorString(status));
  return false;
}

template <typename DType>
__global__ void fill_kernel(DType* data, long long n, DType value) {
  long long i = global_index();
  if (i < n) data[i] = value;
}

template <typename DType>
void fill_async(DType* data, long long n, DType value, cudaStream_t stream) {
  if (n > 0) fill_kernel<<<blocks_for(n), kThreads, 0, stream>>>(data, n, value);
}

/* Typed arrays carved in order from one block of scratch memory.  With a null base it only
 * counts the bytes, so the same layout code sizes the block and then carves it. */
class ScratchArena {
 public:
  explicit ScratchArena(char* base) : base_(base), used_(0) {}
  template <typename T>
  T* take(size_t count) {
    used_ = (used_ + 255) / 256 * 256;  // keep every array aligned
    T* ptr = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += count * sizeof(T);
    return ptr;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_;
};

/* Calls layout(&arena) once to size and once to carve one block from MXNet's GPU allocator
 * (whose size argument is an int: larger requests fail with a message, not a wrapped size). */
template <typename Layout>
bool allocate_scratch(const char* op, const OpResource& res, Layout layout) {
  ScratchArena sizing(nullptr);
  layout(&sizing);
  if (sizing.used() > size_t(INT_MAX)) {
    fail(op, "needs " + std::to_string(sizing.used()) +
                 " bytes of GPU scratch memory, more than MXNet's allocator accepts (2^31 - 1)");
    return false;
  }
  char* base = static_cast<char*>(res.alloc_gpu(int(sizing.used() ? sizing.used() : 1)));
  if (!base) {
    fail(op, "could not allocate " + std::to_string(sizing.used()) + " bytes of GPU scratch memory");
    return false;
  }
  ScratchArena arena(base);
  layout(&arena);
  return true;
}

/* Stable ascending sort of `num_segments` consecutive segments of `segment` (key, value)
 * pairs in one CUB call; `offsets` holds num_segments + 1 segment starts. */
template <typename DType>
struct SegmentedSort {
  const DType* keys_in;
  DType* keys_out;
  const int* values_in;
  int* values_out;
  int num_items, num_segments;
  const int* offsets;
  void* temp;
  size_t temp_bytes;

  cudaError_t run(cudaStream_t stream) {
    return cub::DeviceSegmentedRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out,
                                                    values_in, values_out, num_items,
                                                    num_segments, offsets, offsets + 1, 0,
                                                    int(sizeof(DType) * 8), stream);
  }
  /* Sets temp_bytes (temp must be null: CUB then only reports the size). */
  cudaError_t size(cudaStream_t stream) {
    temp = nullptr;
    return run(stream);
  }
};

/* The (key, anchor) arrays of a per-image ranking and CUB's storage for sorting them: one
 * stable segmented sort of all images per call, storage carved from the operator's scratch. */
template <typename DType>
struct RankBuffers {
  DType* keys;         // (batch, A): ascending sort keys
  DType* sorted_keys;  // (batch, A)
  int* anchor_index;   // (batch, A): j
  int* order;          // (batch, A): anchors of each image by ascending key
  int* offsets;        // batch + 1 segment starts
  void* temp;
  size_t temp_bytes;

  void take(ScratchArena* arena, int batch, int num_anchors) {
    const size_t count = size_t(batch) * num_anchors;
    keys = arena->take<DType>(count);
    sorted_keys = arena->take<DType>(count);
    anchor_index = arena->take<int>(count);
    order = arena->take<int>(count);
    offsets = arena->take<int>(batch + 1);
    temp = arena->take<char>(temp_bytes);
  }
  SegmentedSort<DType> sort(int batch, int num_anchors) const {
    return SegmentedSort<DType>{keys, sorted_keys, anchor_index, order, batch * num_anchors,
                                batch, offsets, temp, temp_bytes};
  }
  /* Sets temp_bytes: CUB's storage need for `batch` segments of `num_anchors`. */
  cudaError_t size_for(int batch, int num_anchors, cudaStream_t stream) {
    SegmentedSort<DType> sizing = sort(batch, num_anchors);
    cudaError_t status = sizing.size(stream);
    temp_bytes = sizing.temp_bytes;
    return status;
  }
};

/* offsets[i] = i * segment for i in [0, count]. */
template <typename Index>
__global__ void segment_offsets_kernel(Index* offsets, int count, int segment) {
  long long i = global_index();
  if (i <= count) offsets[i] = Index(i * segment);
}

inline void segment_offsets_async(int* offsets, int num_segments, int segment,
                                  cudaStream_t stream) {
  segment_offsets_kernel<<<blocks_for(num_segments + 1), kThreads, 0, stream>>>(
      offsets, num_segments, segment);
}

/* Runs a GPU forward; a C++ exception (e.g. std::bad_alloc) becomes an MXNet error instead of
 * crossing MXNet's C interface. */
template <typename Forward>
MXReturnValue guarded(const char* op, Forward forward) {
  try {
    return forward();
  } catch (const std::exception& error) {
    return fail(op, std::string("internal error: ") + error.what());
  }
}

}  // namespace mxssd

#endif  // MXSSD_CUDA_COMMON_CUH_
