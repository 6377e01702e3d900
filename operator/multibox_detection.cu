/*
 * MultiBoxDetection on the GPU.  The same steps as the CPU implementation
 * (multibox_detection.cc): decode candidates in anchor order, stable sort by score, keep
 * the top-k, greedy NMS in score order (one block per image, one thread per later row).
 * All images are ranked by one segmented radix sort (stable) of their score keys.
 */
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
  DType* rows;         // (batch, A, 6): decoded row of every anchor
  int* valid;          // (batch, A): 1 when the anchor is a candidate
  int* count;          // per image: number of candidates
  RankBuffers<DType> rank;  // keys: score_key() of candidates, +max otherwise
};

template <typename DType>
__global__ void decode_kernel(Dims d, DetectionParams p, const DType* cls_prob,
                              const DType* loc_pred, const DType* anchors, Buffers<DType> b) {
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), i = int(a % d.num_anchors);
  DType score;
  int cls = best_class(cls_prob + size_t(n) * d.num_classes * d.num_anchors, i, d.num_anchors,
                       d.num_classes, p.background_id, p.threshold, &score);
  b.valid[a] = cls >= 0;
  b.rank.anchor_index[a] = i;
  b.rank.keys[a] = cls >= 0 ? score_key(score) : DType(FLT_MAX);
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
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), i = int(a % d.num_anchors);
  const int count = b.count[n];
  const int keep = rows_considered(count, nms_topk);
  if (i >= count) return;
  DType* dst = out + a * kRow;
  if (i >= keep) {
    dst[0] = DType(-1);
    return;
  }
  const DType* src = b.rows + (size_t(n) * d.num_anchors + b.rank.order[a]) * kRow;
  for (int c = 0; c < kRow; ++c) dst[c] = src[c];
}

template <typename DType>
__global__ void nms_kernel(Dims d, DetectionParams p, Buffers<DType> b, DType* out) {
  const int n = blockIdx.x;
  const int count = b.count[n];
  const int keep = rows_considered(count, p.nms_topk);
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
void layout(const Dims& d, ScratchArena* arena, Buffers<DType>* b) {
  const size_t per_anchor = size_t(d.batch) * d.num_anchors;
  b->rows = arena->take<DType>(per_anchor * kRow);
  b->valid = arena->take<int>(per_anchor);
  b->count = arena->take<int>(d.batch);
  b->rank.take(arena, d.batch, d.num_anchors);
}

template <typename DType>
MXReturnValue detection_forward(const DetectionParams& p, std::vector<MXTensor>* inputs,
                                MXTensor* out, const OpResource& res) {
  const Dims d{int(inputs->at(0).shape[0]), int(inputs->at(0).shape[1]),
               int(inputs->at(0).shape[2])};
  cudaStream_t stream = static_cast<cudaStream_t>(res.get_cuda_stream());
  Buffers<DType> b{};
  if (!cuda_ok(kDetectionOp, b.rank.size_for(d.batch, d.num_anchors, stream))) return MX_FAIL;
  if (!allocate_scratch(kDetectionOp, res, [&](ScratchArena* arena) { layout(d, arena, &b); })) {
    return MX_FAIL;
  }
  DType* result = out->data<DType>();
  const long long per_anchor = (long long)d.batch * d.num_anchors;
  fill_async(result, per_anchor * kRow, DType(-1), stream);
  decode_kernel<<<blocks_for(per_anchor), kThreads, 0, stream>>>(
      d, p, inputs->at(0).data<DType>(), inputs->at(1).data<DType>(),
      inputs->at(2).data<DType>(), b);
  compact_kernel<<<d.batch, 32, 0, stream>>>(d, b, result);
  segment_offsets_async(b.rank.offsets, d.batch, d.num_anchors, stream);
  if (!cuda_ok(kDetectionOp, cudaPeekAtLastError()) ||
      !cuda_ok(kDetectionOp, b.rank.sort(d.batch, d.num_anchors).run(stream))) {
    return MX_FAIL;
  }
  emit_kernel<<<blocks_for(per_anchor), kThreads, 0, stream>>>(d, p.nms_topk, b, result);
  nms_kernel<<<d.batch, kThreads, 0, stream>>>(d, p, b, result);
  return cuda_ok(kDetectionOp, cudaPeekAtLastError()) ? MX_SUCCESS : MX_FAIL;
}

}  // namespace

MXReturnValue detection_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                    std::vector<MXTensor>* outputs, const OpResource& res) {
  DetectionParams p;
  if (!parse_detection(attrs, &p)) return MX_FAIL;
  return guarded(kDetectionOp, [&] {
    return dispatch_float(inputs->at(0).dtype, [&](auto zero) {
      return detection_forward<decltype(zero)>(p, inputs, &outputs->at(0), res);
    });
  });
}

}  // namespace mxssd
