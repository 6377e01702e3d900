/*
 * MultiBoxDetection on the GPU.  The same steps as the CPU implementation
 * (multibox_detection.cc): decode candidates in anchor order, stable sort by score, keep
 * the top-k, greedy NMS in score order (one block per image, one thread per later row).
 */
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <cfloat>

#include "cuda_common.cuh"
#include "multibox_detection.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

struct Dims {
  int batch, num_classes, num_anchors;
};

template <typename DType>
struct Buffers {
  DType* rows;     // (batch, A, 6): decoded row of every anchor
  int* valid;      // (batch, A): 1 when the anchor is a candidate
  DType* keys;     // (batch, A): -score of candidates, +max otherwise (ascending sort)
  int* order;      // (batch, A): anchor indices by rank
  int* count;      // per image: number of candidates
};

template <typename DType>
__global__ void decode_kernel(Dims d, DetectionParams p, const DType* cls_prob,
                              const DType* loc_pred, const DType* anchors, Buffers<DType> b) {
  const int n = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= d.num_anchors) return;
  const size_t a = size_t(n) * d.num_anchors + i;
  DType score;
  int cls = best_class(cls_prob + size_t(n) * d.num_classes * d.num_anchors, i, d.num_anchors,
                       d.num_classes, p.background_id, p.threshold, &score);
  b.valid[a] = cls >= 0;
  b.order[a] = i;
  b.keys[a] = cls >= 0 ? -score : DType(FLT_MAX);
  if (cls >= 0) {
    detection_row(cls, score, anchors + i * 4, loc_pred + a * 4, p.background_id, p.variances,
                  p.clip, b.rows + a * kRow);
  }
}

/* Candidates in anchor order (what the CPU writes before sorting): the rows past the
 * top-k keep this content with class -1. */
template <typename DType>
__global__ void compact_kernel(Dims d, Buffers<DType> b, DType* out) {
  const int n = blockIdx.x;
  if (threadIdx.x != 0) return;
  int count = 0;
  for (int i = 0; i < d.num_anchors; ++i) {
    size_t a = size_t(n) * d.num_anchors + i;
    if (!b.valid[a]) continue;
    DType* dst = out + (size_t(n) * d.num_anchors + count) * kRow;
    for (int c = 0; c < kRow; ++c) dst[c] = b.rows[a * kRow + c];
    ++count;
  }
  b.count[n] = count;
}

template <typename DType>
__global__ void emit_kernel(Dims d, int nms_topk, Buffers<DType> b, DType* out) {
  const int n = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int count = b.count[n];
  const int keep = (nms_topk > 0 && nms_topk < count) ? nms_topk : count;
  if (i >= count) return;
  DType* dst = out + (size_t(n) * d.num_anchors + i) * kRow;
  if (i >= keep) {
    dst[0] = DType(-1);
    return;
  }
  const DType* src = b.rows + (size_t(n) * d.num_anchors + b.order[size_t(n) * d.num_anchors + i]) * kRow;
  for (int c = 0; c < kRow; ++c) dst[c] = src[c];
}

template <typename DType>
__global__ void nms_kernel(Dims d, DetectionParams p, Buffers<DType> b, DType* out) {
  const int n = blockIdx.x;
  const int count = b.count[n];
  const int keep = (p.nms_topk > 0 && p.nms_topk < count) ? p.nms_topk : count;
  DType* rows = out + size_t(n) * d.num_anchors * kRow;
  for (int i = 0; i < keep; ++i) {
    __syncthreads();
    const DType* kept = rows + i * kRow;
    if (kept[0] < 0) continue;
    for (int j = i + 1 + threadIdx.x; j < keep; j += blockDim.x) {
      DType* other = rows + j * kRow;
      if (other[0] < 0 || !(p.force_suppress || other[0] == kept[0])) continue;
      if (nms_iou(kept + 2, other + 2) >= p.nms_threshold) other[0] = DType(-1);
    }
  }
}

template <typename DType>
MXReturnValue detection_forward(const DetectionParams& p, std::vector<MXTensor>* inputs,
                                MXTensor* out, const OpResource& res) {
  const Dims d{int(inputs->at(0).shape[0]), int(inputs->at(0).shape[1]),
               int(inputs->at(0).shape[2])};
  const size_t per_image = size_t(d.batch) * d.num_anchors;
  size_t bytes = 0;
  for (size_t b : {per_image * kRow * sizeof(DType), per_image * sizeof(int),
                   per_image * sizeof(DType), per_image * sizeof(int), d.batch * sizeof(int)}) {
    bytes += ScratchArena::padded(b) + 256;
  }
  ScratchArena arena(res, bytes);
  Buffers<DType> b;
  b.rows = arena.take<DType>(per_image * kRow);
  b.valid = arena.take<int>(per_image);
  b.keys = arena.take<DType>(per_image);
  b.order = arena.take<int>(per_image);
  b.count = arena.take<int>(d.batch);

  cudaStream_t stream = res.get_cuda_stream();
  DType* result = out->data<DType>();
  const dim3 per_anchor(blocks_for(d.num_anchors), d.batch);
  fill_async(result, (long long)per_image * kRow, DType(-1), stream);
  decode_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p, inputs->at(0).data<DType>(),
                                                     inputs->at(1).data<DType>(),
                                                     inputs->at(2).data<DType>(), b);
  compact_kernel<<<d.batch, 32, 0, stream>>>(d, b, result);
  for (int n = 0; n < d.batch; ++n) {
    DType* keys = b.keys + size_t(n) * d.num_anchors;
    thrust::stable_sort_by_key(thrust::cuda::par.on(stream), keys, keys + d.num_anchors,
                               b.order + size_t(n) * d.num_anchors);
  }
  emit_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p.nms_topk, b, result);
  nms_kernel<<<d.batch, kThreads, 0, stream>>>(d, p, b, result);
  return cuda_ok(kDetectionOp, cudaPeekAtLastError()) ? MX_SUCCESS : MX_FAIL;
}

}  // namespace

MXReturnValue detection_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                    std::vector<MXTensor>* outputs, const OpResource& res) {
  DetectionParams p;
  if (!parse_detection(attrs, &p)) return MX_FAIL;
  if (inputs->at(0).dtype == kFloat64) {
    return detection_forward<double>(p, inputs, &outputs->at(0), res);
  }
  return detection_forward<float>(p, inputs, &outputs->at(0), res);
}

}  // namespace mxssd
