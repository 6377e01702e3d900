/*
 * MultiBoxTarget on the GPU.  The same steps as the CPU implementation (multibox_target.cc),
 * one thread block per image for the sequential parts (bipartite matching) and one thread
 * per anchor elsewhere; hard negatives are ranked with a stable sort by background
 * probability, i.e. the same (probability, anchor) order as the CPU's selection.
 */
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <cfloat>

#include "cuda_common.cuh"
#include "multibox_target.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

struct Dims {
  int batch, num_anchors, num_labels, label_width, num_classes;
};

template <typename DType>
struct Buffers {
  int* num_gt;        // per image
  int* bad_row;       // per image: first malformed padding row, -1 if none
  int* num_positive;  // per image
  int* num_candidates;
  DType* iou;         // (batch, num_labels, A): row k = IoUs of ground truth k
  DType* best_iou;    // (batch, A)
  int* match;         // (batch, A)
  signed char* flag;  // (batch, A)
  DType* keys;        // (batch, A): background probability of mining candidates, else max
  int* order;         // (batch, A)
};

template <typename DType>
__global__ void init_kernel(Dims d, const DType* labels, Buffers<DType> b) {
  const int n = blockIdx.x;
  if (threadIdx.x == 0) {
    b.num_gt[n] = count_ground_truths(labels + size_t(n) * d.num_labels * d.label_width,
                                      d.num_labels, d.label_width, &b.bad_row[n]);
    b.num_positive[n] = 0;
    b.num_candidates[n] = 0;
  }
  for (int j = threadIdx.x; j < d.num_anchors; j += blockDim.x) {
    size_t a = size_t(n) * d.num_anchors + j;
    b.flag[a] = kIgnored;
    b.match[a] = -1;
    b.best_iou[a] = DType(-1);
  }
}

template <typename DType>
__global__ void iou_kernel(Dims d, const DType* anchors, const DType* labels, Buffers<DType> b) {
  const int n = blockIdx.z, k = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= b.num_gt[n] || j >= d.num_anchors) return;
  const DType* gt = labels + (size_t(n) * d.num_labels + k) * d.label_width + 1;
  b.iou[(size_t(n) * d.num_labels + k) * d.num_anchors + j] = match_iou(anchors + j * 4, gt);
}

/* Block-wide first-maximum over free anchors of one ground-truth row. */
template <typename DType>
__device__ int best_free_anchor(const DType* row, const signed char* flag, int num_anchors,
                                DType* s_val, int* s_idx) {
  int best = -1;
  for (int j = threadIdx.x; j < num_anchors; j += blockDim.x) {
    if (flag[j] != kPositive && (best < 0 || row[j] > row[best])) best = j;
  }
  s_val[threadIdx.x] = best < 0 ? DType(-FLT_MAX) : row[best];
  s_idx[threadIdx.x] = best;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      int o = threadIdx.x + stride;
      bool take = s_idx[o] >= 0 &&
                  (s_idx[threadIdx.x] < 0 || s_val[o] > s_val[threadIdx.x] ||
                   (s_val[o] == s_val[threadIdx.x] && s_idx[o] < s_idx[threadIdx.x]));
      if (take) {
        s_val[threadIdx.x] = s_val[o];
        s_idx[threadIdx.x] = s_idx[o];
      }
    }
    __syncthreads();
  }
  int result = s_idx[0];
  __syncthreads();
  return result;
}

/* Greedy bipartite matching of one image (one block), as in match_bipartite(). */
template <typename DType>
__global__ void bipartite_kernel(Dims d, Buffers<DType> b, int* best_anchor, char* gt_matched) {
  __shared__ DType s_val[kThreads];
  __shared__ int s_idx[kThreads];
  __shared__ int s_pick;
  const int n = blockIdx.x, A = d.num_anchors, G = b.num_gt[n];
  const DType* iou = b.iou + size_t(n) * d.num_labels * A;
  signed char* flag = b.flag + size_t(n) * A;
  int* best = best_anchor + n * d.num_labels;
  char* matched = gt_matched + n * d.num_labels;
  for (int k = 0; k < G; ++k) {
    int j = best_free_anchor(iou + size_t(k) * A, flag, A, s_val, s_idx);
    if (threadIdx.x == 0) {
      best[k] = j;
      matched[k] = 0;
    }
  }
  __syncthreads();
  for (int round = 0; round < G; ++round) {
    if (threadIdx.x == 0) {
      DType pick_iou;
      const int pick = next_bipartite_pair(iou, A, G, best, matched, &pick_iou);
      s_pick = pick;
      if (pick >= 0) {
        int anchor = best[pick];
        flag[anchor] = kPositive;
        b.match[size_t(n) * A + anchor] = pick;
        b.best_iou[size_t(n) * A + anchor] = pick_iou;
        matched[pick] = 1;
        b.num_positive[n] += 1;
      }
    }
    __syncthreads();
    if (s_pick < 0) break;
    const int taken = best[s_pick];
    for (int k = 0; k < G; ++k) {
      if (!matched[k] && best[k] == taken) {
        int j = best_free_anchor(iou + size_t(k) * A, flag, A, s_val, s_idx);
        if (threadIdx.x == 0) best[k] = j;
      }
      __syncthreads();
    }
  }
}

/* Best ground truth of each remaining anchor; positive above the threshold. */
template <typename DType>
__global__ void threshold_kernel(Dims d, float overlap_threshold, Buffers<DType> b) {
  const int n = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= d.num_anchors) return;
  const size_t a = size_t(n) * d.num_anchors + j;
  if (b.flag[a] == kPositive) return;
  const DType* iou = b.iou + size_t(n) * d.num_labels * d.num_anchors;
  for (int k = 0; k < b.num_gt[n]; ++k) {
    DType v = iou[size_t(k) * d.num_anchors + j];
    if (v > b.best_iou[a]) {
      b.best_iou[a] = v;
      b.match[a] = k;
    }
  }
  if (overlap_threshold > 0.f && b.match[a] >= 0 && b.best_iou[a] > overlap_threshold) {
    b.flag[a] = kPositive;
    atomicAdd(&b.num_positive[n], 1);
  }
}

template <typename DType>
__global__ void mining_keys_kernel(Dims d, float mining_thresh, const DType* cls_pred,
                                   Buffers<DType> b) {
  const int n = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= d.num_anchors) return;
  const size_t a = size_t(n) * d.num_anchors + j;
  b.order[a] = j;
  if (b.flag[a] == kIgnored && b.best_iou[a] < mining_thresh) {
    b.keys[a] = background_probability(cls_pred + size_t(n) * d.num_classes * d.num_anchors, j,
                                       d.num_anchors, d.num_classes);
    atomicAdd(&b.num_candidates[n], 1);
  } else {
    b.keys[a] = DType(FLT_MAX);  // sorts after every candidate
  }
}

/* Mined negatives: the first candidates in probability order; without mining every
 * non-positive anchor.  Images without objects take part only with a minimum > 0. */
template <typename DType>
__global__ void negatives_kernel(Dims d, TargetParams p, bool mined, Buffers<DType> b) {
  const int n = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= d.num_anchors) return;
  if (b.num_gt[n] == 0 && p.minimum_negative_samples <= 0) return;
  signed char* flag = b.flag + size_t(n) * d.num_anchors;
  if (!mined) {
    if (flag[i] != kPositive) flag[i] = kNegative;
    return;
  }
  int count = negatives_to_mine(b.num_positive[n], d.num_anchors, p.negative_mining_ratio,
                                p.minimum_negative_samples);
  if (count > b.num_candidates[n]) count = b.num_candidates[n];
  if (i < count) flag[b.order[size_t(n) * d.num_anchors + i]] = kNegative;
}

template <typename DType>
__global__ void write_kernel(Dims d, TargetParams p, const DType* anchors, const DType* labels,
                             Buffers<DType> b, DType* loc_target, DType* loc_mask,
                             DType* cls_target) {
  const int n = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= d.num_anchors) return;
  const size_t a = size_t(n) * d.num_anchors + j;
  const int gt = b.match[a] < 0 ? 0 : b.match[a];
  write_anchor_target(b.flag[a], anchors + j * 4,
                      labels + (size_t(n) * d.num_labels + gt) * d.label_width, p.variances,
                      p.ignore_label, loc_target + a * 4, loc_mask + a * 4, cls_target + a);
}

template <typename DType>
MXReturnValue target_forward(const TargetParams& p, std::vector<MXTensor>* inputs,
                             std::vector<MXTensor>* outputs, const OpResource& res) {
  const DType* anchors = inputs->at(0).data<DType>();
  const DType* labels = inputs->at(1).data<DType>();
  const DType* cls_pred = inputs->at(2).data<DType>();
  const Dims d{int(inputs->at(1).shape[0]), int(inputs->at(0).shape[1]),
               int(inputs->at(1).shape[1]), int(inputs->at(1).shape[2]),
               int(inputs->at(2).shape[1])};
  const size_t per_image = size_t(d.batch) * d.num_anchors;
  const size_t per_label = size_t(d.batch) * d.num_labels;
  size_t bytes = 0;
  for (size_t b : {4 * size_t(d.batch) * sizeof(int), per_label * d.num_anchors * sizeof(DType),
                   per_image * (2 * sizeof(DType) + 2 * sizeof(int) + 1),
                   per_label * (sizeof(int) + 1)}) {
    bytes += ScratchArena::padded(b) + 1024;
  }
  ScratchArena arena(res, bytes);
  Buffers<DType> b;
  b.num_gt = arena.take<int>(d.batch);
  b.bad_row = arena.take<int>(d.batch);
  b.num_positive = arena.take<int>(d.batch);
  b.num_candidates = arena.take<int>(d.batch);
  b.iou = arena.take<DType>(per_label * d.num_anchors);
  b.best_iou = arena.take<DType>(per_image);
  b.keys = arena.take<DType>(per_image);
  b.match = arena.take<int>(per_image);
  b.order = arena.take<int>(per_image);
  b.flag = arena.take<signed char>(per_image);
  int* best_anchor = arena.take<int>(per_label);
  char* gt_matched = arena.take<char>(per_label);

  cudaStream_t stream = res.get_cuda_stream();
  const dim3 per_anchor(blocks_for(d.num_anchors), d.batch);
  init_kernel<<<d.batch, kThreads, 0, stream>>>(d, labels, b);
  iou_kernel<<<dim3(blocks_for(d.num_anchors), d.num_labels, d.batch), kThreads, 0, stream>>>(
      d, anchors, labels, b);
  bipartite_kernel<<<d.batch, kThreads, 0, stream>>>(d, b, best_anchor, gt_matched);
  threshold_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p.overlap_threshold, b);
  const bool mined = p.negative_mining_ratio > 0.f;
  if (mined) {
    mining_keys_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p.negative_mining_thresh,
                                                            cls_pred, b);
    for (int n = 0; n < d.batch; ++n) {
      DType* keys = b.keys + size_t(n) * d.num_anchors;
      thrust::stable_sort_by_key(thrust::cuda::par.on(stream), keys, keys + d.num_anchors,
                                 b.order + size_t(n) * d.num_anchors);
    }
  }
  negatives_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p, mined, b);
  write_kernel<<<per_anchor, kThreads, 0, stream>>>(
      d, p, anchors, labels, b, outputs->at(0).data<DType>(), outputs->at(1).data<DType>(),
      outputs->at(2).data<DType>());
  if (!cuda_ok(kTargetOp, cudaPeekAtLastError())) return MX_FAIL;

  std::vector<int> bad_rows(d.batch);
  cudaMemcpyAsync(bad_rows.data(), b.bad_row, d.batch * sizeof(int), cudaMemcpyDeviceToHost,
                  stream);
  if (!cuda_ok(kTargetOp, cudaStreamSynchronize(stream))) return MX_FAIL;
  for (int n = 0; n < d.batch; ++n) {
    if (bad_rows[n] >= 0) {
      return fail(kTargetOp, "input 'label', image " + std::to_string(n) + ": label row " +
                           std::to_string(bad_rows[n]) +
                           " has class -1 (padding) but other values; padding rows must be all -1");
    }
  }
  return MX_SUCCESS;
}

}  // namespace

MXReturnValue target_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource& res) {
  TargetParams p;
  if (!parse_target(attrs, &p)) return MX_FAIL;
  if (inputs->at(0).dtype == kFloat64) return target_forward<double>(p, inputs, outputs, res);
  return target_forward<float>(p, inputs, outputs, res);
}

}  // namespace mxssd
