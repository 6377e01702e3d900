/*
 * MultiBoxTarget on the GPU.  The same steps as the CPU implementation (multibox_target.cc),
 * one thread block per image for the sequential parts (bipartite matching) and one thread
 * per anchor elsewhere; hard negatives are ranked by one segmented radix sort (stable) of
 * their mining keys, i.e. the same (key, anchor) order as the CPU's selection.
 *
 * IoUs are recomputed where needed instead of stored: the scratch memory is O(batch x
 * anchors + batch x label rows) whatever the number of (padding) label rows.  No step waits
 * for the host: a label with a malformed padding row, which the CPU reports as an error,
 * gets NaN targets for that image here (the training's NaN guard stops on them).
 */
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
  int* num_gt;         // per image
  int* bad_row;        // per image: first malformed padding row, -1 if none
  int* num_positive;   // per image
  int* num_candidates; // per image
  DType* best_iou;     // (batch, A)
  int* match;          // (batch, A)
  signed char* flag;   // (batch, A)
  int* best_anchor;    // (batch, M): best free anchor of each ground truth
  char* gt_matched;    // (batch, M)
  RankBuffers<DType> rank;  // keys: mining key of candidates, else FLT_MAX
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

/* Block-wide first-maximum IoU over the free anchors of one ground truth; -1 if none. */
template <typename DType>
__device__ int best_free_anchor(const DType* anchors, const DType* gt, const signed char* flag,
                                int num_anchors, DType* s_val, int* s_idx) {
  int best = -1;
  DType best_val = DType(-FLT_MAX);
  for (int j = threadIdx.x; j < num_anchors; j += blockDim.x) {
    if (flag[j] == kPositive) continue;
    DType v = match_iou(anchors + j * 4, gt);
    if (best < 0 || v > best_val) {
      best = j;
      best_val = v;
    }
  }
  s_val[threadIdx.x] = best_val;
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
__global__ void bipartite_kernel(Dims d, const DType* anchors, const DType* labels,
                                 Buffers<DType> b) {
  __shared__ DType s_val[kThreads];
  __shared__ int s_idx[kThreads];
  __shared__ int s_pick;
  const int n = blockIdx.x, A = d.num_anchors, G = b.num_gt[n];
  const DType* gts = labels + size_t(n) * d.num_labels * d.label_width + 1;
  signed char* flag = b.flag + size_t(n) * A;
  int* best = b.best_anchor + size_t(n) * d.num_labels;
  char* matched = b.gt_matched + size_t(n) * d.num_labels;
  for (int k = 0; k < G; ++k) {
    int j = best_free_anchor(anchors, gts + size_t(k) * d.label_width, flag, A, s_val, s_idx);
    if (threadIdx.x == 0) {
      best[k] = j;
      matched[k] = 0;
    }
  }
  __syncthreads();
  for (int round = 0; round < G; ++round) {
    if (threadIdx.x == 0) {
      DType pick_iou;
      const int pick = next_bipartite_pair(
          G, best, matched,
          [=](int k, int j) { return match_iou(anchors + j * 4, gts + size_t(k) * d.label_width); },
          &pick_iou);
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
        int j = best_free_anchor(anchors, gts + size_t(k) * d.label_width, flag, A, s_val, s_idx);
        if (threadIdx.x == 0) best[k] = j;
      }
      __syncthreads();
    }
  }
}

/* Best ground truth of each remaining anchor; positive above the threshold. */
template <typename DType>
__global__ void threshold_kernel(Dims d, float overlap_threshold, const DType* anchors,
                                 const DType* labels, Buffers<DType> b) {
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), j = int(a % d.num_anchors);
  if (b.flag[a] == kPositive) return;
  const DType* gts = labels + size_t(n) * d.num_labels * d.label_width + 1;
  for (int k = 0; k < b.num_gt[n]; ++k) {
    DType v = match_iou(anchors + j * 4, gts + size_t(k) * d.label_width);
    if (v > b.best_iou[a]) {
      b.best_iou[a] = v;
      b.match[a] = k;
    }
  }
  if (is_threshold_match(b.best_iou[a], b.match[a], overlap_threshold)) {
    b.flag[a] = kPositive;
    atomicAdd(&b.num_positive[n], 1);
  }
}

template <typename DType>
__global__ void mining_keys_kernel(Dims d, float mining_thresh, const DType* cls_pred,
                                   Buffers<DType> b) {
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), j = int(a % d.num_anchors);
  b.rank.anchor_index[a] = j;
  if (is_mining_candidate(b.flag[a], b.best_iou[a], mining_thresh)) {
    b.rank.keys[a] = mining_key(background_probability(
        cls_pred + size_t(n) * d.num_classes * d.num_anchors, j, d.num_anchors, d.num_classes));
    atomicAdd(&b.num_candidates[n], 1);
  } else {
    b.rank.keys[a] = DType(FLT_MAX);  // sorts after every candidate (keys are at most 2)
  }
}

/* Mined negatives: the first candidates in key order; without mining every non-positive
 * anchor.  Images without objects take part only with a minimum > 0. */
template <typename DType>
__global__ void negatives_kernel(Dims d, TargetParams p, bool mined, Buffers<DType> b) {
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), i = int(a % d.num_anchors);
  if (!image_has_negatives(b.num_gt[n], p.minimum_negative_samples)) return;
  signed char* flag = b.flag + size_t(n) * d.num_anchors;
  if (!mined) {
    if (flag[i] != kPositive) flag[i] = kNegative;
    return;
  }
  int count = negatives_to_mine(b.num_positive[n], d.num_anchors, p.negative_mining_ratio,
                                p.minimum_negative_samples);
  if (count > b.num_candidates[n]) count = b.num_candidates[n];
  if (i < count) flag[b.rank.order[a]] = kNegative;
}

template <typename DType>
__global__ void write_kernel(Dims d, TargetParams p, const DType* anchors, const DType* labels,
                             Buffers<DType> b, DType* loc_target, DType* loc_mask,
                             DType* cls_target) {
  const long long a = global_index();
  if (a >= (long long)d.batch * d.num_anchors) return;
  const int n = int(a / d.num_anchors), j = int(a % d.num_anchors);
  if (b.bad_row[n] >= 0) {  // malformed label: the CPU raises, here the targets become NaN
    for (int c = 0; c < 4; ++c) loc_target[a * 4 + c] = loc_mask[a * 4 + c] = DType(NAN);
    cls_target[a] = DType(NAN);
    return;
  }
  const int gt = b.match[a] < 0 ? 0 : b.match[a];
  write_anchor_target(b.flag[a], anchors + j * 4,
                      labels + (size_t(n) * d.num_labels + gt) * d.label_width, p.variances,
                      p.ignore_label, loc_target + a * 4, loc_mask + a * 4, cls_target + a);
}

template <typename DType>
void layout(const Dims& d, ScratchArena* arena, Buffers<DType>* b) {
  const size_t per_anchor = size_t(d.batch) * d.num_anchors;
  const size_t per_label = size_t(d.batch) * d.num_labels;
  b->num_gt = arena->take<int>(d.batch);
  b->bad_row = arena->take<int>(d.batch);
  b->num_positive = arena->take<int>(d.batch);
  b->num_candidates = arena->take<int>(d.batch);
  b->best_iou = arena->take<DType>(per_anchor);
  b->match = arena->take<int>(per_anchor);
  b->flag = arena->take<signed char>(per_anchor);
  b->best_anchor = arena->take<int>(per_label);
  b->gt_matched = arena->take<char>(per_label);
  b->rank.take(arena, d.batch, d.num_anchors);
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
  cudaStream_t stream = static_cast<cudaStream_t>(res.get_cuda_stream());
  const bool mined = p.negative_mining_ratio > 0.f;
  Buffers<DType> b{};
  if (mined && !cuda_ok(kTargetOp, b.rank.size_for(d.batch, d.num_anchors, stream))) {
    return MX_FAIL;
  }
  if (!allocate_scratch(kTargetOp, res, [&](ScratchArena* arena) { layout(d, arena, &b); })) {
    return MX_FAIL;
  }
  const unsigned per_anchor = blocks_for((long long)d.batch * d.num_anchors);
  init_kernel<<<d.batch, kThreads, 0, stream>>>(d, labels, b);
  bipartite_kernel<<<d.batch, kThreads, 0, stream>>>(d, anchors, labels, b);
  threshold_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p.overlap_threshold, anchors,
                                                        labels, b);
  if (mined) {
    mining_keys_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p.negative_mining_thresh,
                                                            cls_pred, b);
    segment_offsets_async(b.rank.offsets, d.batch, d.num_anchors, stream);
    if (!cuda_ok(kTargetOp, cudaPeekAtLastError()) ||
        !cuda_ok(kTargetOp, b.rank.sort(d.batch, d.num_anchors).run(stream))) {
      return MX_FAIL;
    }
  }
  negatives_kernel<<<per_anchor, kThreads, 0, stream>>>(d, p, mined, b);
  write_kernel<<<per_anchor, kThreads, 0, stream>>>(
      d, p, anchors, labels, b, outputs->at(0).data<DType>(), outputs->at(1).data<DType>(),
      outputs->at(2).data<DType>());
  return cuda_ok(kTargetOp, cudaPeekAtLastError()) ? MX_SUCCESS : MX_FAIL;
}

}  // namespace

MXReturnValue target_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource& res) {
  TargetParams p;
  if (!parse_target(attrs, &p)) return MX_FAIL;
  return guarded(kTargetOp, [&] {
    return dispatch_float(inputs->at(0).dtype, [&](auto zero) {
      return target_forward<decltype(zero)>(p, inputs, outputs, res);
    });
  });
}

}  // namespace mxssd
