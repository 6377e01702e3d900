/*
 * MultiBoxTarget: training targets for SSD's localisation and classification heads.
 *
 * Per image: greedy bipartite matching (each ground truth takes its best free anchor, best
 * pairs first), then threshold matching (IoU > overlap_threshold), then hard negative mining
 * (unmatched anchors with the lowest background probability).  Matches MXNet's
 * _contrib_MultiBoxTarget output exactly, with one deliberate difference: MXNet's CPU kernel
 * ignores minimum_negative_samples and leaves images without objects entirely ignored;
 * here that minimum is honoured (as MXNet's GPU kernel does), so background-only images can
 * teach the detector.  With minimum_negative_samples = 0 both agree.
 *
 * Faster than MXNet's kernel because IoUs are computed only against real ground truths
 * (not the padded label rows), the bipartite step keeps each ground truth's best anchor
 * instead of rescanning the whole IoU matrix per match, and images run in parallel.
 */
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "multibox_params.h"
#include "multibox_target.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

template <typename DType>
struct ImageTargets {
  const DType* anchors;   // (A, 4)
  const DType* labels;    // (M, W)
  const DType* cls_pred;  // (C, A) logits
  DType* loc_target;      // (A * 4)
  DType* loc_mask;        // (A * 4)
  DType* cls_target;      // (A)
};

struct Sizes {
  int num_anchors, num_labels, label_width, num_classes;
};

template <typename DType>
struct Scratch {
  std::vector<DType> iou;            // (G, A): row k holds the IoUs of ground truth k
  std::vector<DType> best_iou;       // per anchor, over all ground truths (-1 if none)
  std::vector<int> match;            // per anchor: index of its ground truth
  std::vector<signed char> flag;     // per anchor: AnchorFlag
  std::vector<int> best_anchor;      // per ground truth, among anchors still free
  std::vector<char> gt_matched;      // per ground truth, set by the bipartite step
  std::vector<std::pair<DType, int>> candidates;  // (background prob, anchor)
};

template <typename DType>
void compute_ious(const ImageTargets<DType>& img, const Sizes& s, int num_gt, Scratch<DType>* w) {
  const int A = s.num_anchors;
  w->iou.resize(size_t(num_gt) * A);
  for (int k = 0; k < num_gt; ++k) {
    const DType* gt = img.labels + k * s.label_width + 1;
    DType* row = w->iou.data() + size_t(k) * A;
    for (int j = 0; j < A; ++j) row[j] = match_iou(img.anchors + j * 4, gt);
  }
}

template <typename DType>
int best_free_anchor(const Scratch<DType>& w, int gt, int num_anchors) {
  const DType* row = w.iou.data() + size_t(gt) * num_anchors;
  int best = -1;
  for (int j = 0; j < num_anchors; ++j) {
    if (w.flag[j] != kPositive && (best < 0 || row[j] > row[best])) best = j;
  }
  return best;
}

/* Greedy bipartite matching.  MXNet scans all (anchor, gt) pairs per match and keeps the
 * first maximum in anchor-major order; keeping each ground truth's first-best free anchor
 * and breaking ties by (anchor, gt) picks the same pair. */
template <typename DType>
int match_bipartite(const Sizes& s, int num_gt, Scratch<DType>* w) {
  const int A = s.num_anchors;
  w->best_anchor.resize(num_gt);
  w->gt_matched.assign(num_gt, 0);
  for (int k = 0; k < num_gt; ++k) w->best_anchor[k] = best_free_anchor(*w, k, A);
  int num_positive = 0;
  for (int round = 0; round < num_gt; ++round) {
    DType pick_iou;
    const DType* iou = w->iou.data();
    const int pick = next_bipartite_pair(
        num_gt, w->best_anchor.data(), w->gt_matched.data(),
        [iou, A](int k, int j) { return iou[size_t(k) * A + j]; }, &pick_iou);
    if (pick < 0) break;  // no remaining pair overlaps
    const int anchor = w->best_anchor[pick];
    w->flag[anchor] = kPositive;
    w->match[anchor] = pick;
    w->best_iou[anchor] = pick_iou;
    w->gt_matched[pick] = 1;
    ++num_positive;
    for (int k = 0; k < num_gt; ++k) {
      if (!w->gt_matched[k] && w->best_anchor[k] == anchor) {
        w->best_anchor[k] = best_free_anchor(*w, k, A);
      }
    }
  }
  return num_positive;
}

/* Best ground truth of every anchor not taken by the bipartite step; positive above the
 * overlap threshold (when it is > 0).  The best IoU also decides mining eligibility. */
template <typename DType>
int match_threshold(const Sizes& s, int num_gt, float overlap_threshold, Scratch<DType>* w) {
  const int A = s.num_anchors;
  for (int k = 0; k < num_gt; ++k) {
    const DType* row = w->iou.data() + size_t(k) * A;
    for (int j = 0; j < A; ++j) {
      if (w->flag[j] != kPositive && row[j] > w->best_iou[j]) {
        w->best_iou[j] = row[j];
        w->match[j] = k;
      }
    }
  }
  int num_positive = 0;
  for (int j = 0; j < A; ++j) {
    if (w->flag[j] != kPositive && is_threshold_match(w->best_iou[j], w->match[j], overlap_threshold)) {
      w->flag[j] = kPositive;
      ++num_positive;
    }
  }
  return num_positive;
}

/* Marks the `num_negative` eligible anchors the network finds least like background. */
template <typename DType>
void mine_hard_negatives(const ImageTargets<DType>& img, const Sizes& s, int num_negative,
                         float mining_thresh, Scratch<DType>* w) {
  w->candidates.clear();
  for (int j = 0; j < s.num_anchors; ++j) {
    if (is_mining_candidate(w->flag[j], w->best_iou[j], mining_thresh)) {
      DType prob = background_probability(img.cls_pred, j, s.num_anchors, s.num_classes);
      w->candidates.emplace_back(mining_key(prob), j);
    }
  }
  num_negative = std::min<int>(num_negative, int(w->candidates.size()));
  if (num_negative <= 0) return;
  // (probability, anchor index) order equals MXNet's stable sort by probability.
  auto nth = w->candidates.begin() + (num_negative - 1);
  std::nth_element(w->candidates.begin(), nth, w->candidates.end());
  for (auto it = w->candidates.begin(); it <= nth; ++it) w->flag[it->second] = kNegative;
}

template <typename DType>
void write_targets(const ImageTargets<DType>& img, const Sizes& s, const TargetParams& p,
                   const Scratch<DType>& w) {
  for (int j = 0; j < s.num_anchors; ++j) {
    const DType* gt = img.labels + std::max(w.match[j], 0) * s.label_width;
    write_anchor_target(w.flag[j], img.anchors + j * 4, gt, p.variances, p.ignore_label,
                        img.loc_target + j * 4, img.loc_mask + j * 4, img.cls_target + j);
  }
}

template <typename DType>
bool image_targets(const ImageTargets<DType>& img, const Sizes& s, const TargetParams& p,
                   Scratch<DType>* w, std::string* error) {
  const int A = s.num_anchors;
  int bad_row;
  const int num_gt = count_ground_truths(img.labels, s.num_labels, s.label_width, &bad_row);
  if (bad_row >= 0) {
    *error = "label row " + std::to_string(bad_row) +
             " has class -1 (padding) but other values; padding rows must be all -1";
    return false;
  }
  w->flag.assign(A, kIgnored);
  w->match.assign(A, -1);
  w->best_iou.assign(A, DType(-1));
  int num_positive = 0;
  if (num_gt > 0) {
    compute_ious(img, s, num_gt, w);
    num_positive = match_bipartite(s, num_gt, w);
    num_positive += match_threshold(s, num_gt, p.overlap_threshold, w);
  }
  const bool any_negatives = image_has_negatives(num_gt, p.minimum_negative_samples);
  if (any_negatives && p.negative_mining_ratio > 0.f) {
    const int num_negative = negatives_to_mine(num_positive, A, p.negative_mining_ratio,
                                               p.minimum_negative_samples);
    mine_hard_negatives(img, s, num_negative, p.negative_mining_thresh, w);
  } else if (any_negatives) {
    for (int j = 0; j < A; ++j) if (w->flag[j] != kPositive) w->flag[j] = kNegative;
  }
  write_targets(img, s, p, *w);
  return true;
}

template <typename DType>
MXReturnValue target_forward(const TargetParams& p, std::vector<MXTensor>* inputs,
                             std::vector<MXTensor>* outputs) {
  const MXTensor& anchor = inputs->at(0);
  const MXTensor& label = inputs->at(1);
  const MXTensor& cls_pred = inputs->at(2);
  const int batch = int(label.shape[0]);
  const Sizes s{int(anchor.shape[1]), int(label.shape[1]), int(label.shape[2]),
                int(cls_pred.shape[1])};
  std::string error;
  int failed_image = -1;
#pragma omp parallel
  {
    Scratch<DType> scratch;
#pragma omp for schedule(dynamic)
    for (int n = 0; n < batch; ++n) {
      ImageTargets<DType> img{
          static_cast<const DType*>(anchor.data_ptr),
          static_cast<const DType*>(label.data_ptr) + size_t(n) * s.num_labels * s.label_width,
          static_cast<const DType*>(cls_pred.data_ptr) + size_t(n) * s.num_classes * s.num_anchors,
          outputs->at(0).data<DType>() + size_t(n) * s.num_anchors * 4,
          outputs->at(1).data<DType>() + size_t(n) * s.num_anchors * 4,
          outputs->at(2).data<DType>() + size_t(n) * s.num_anchors};
      std::string image_error;
      if (!image_targets(img, s, p, &scratch, &image_error)) {
#pragma omp critical
        if (failed_image < 0 || n < failed_image) {
          failed_image = n;
          error = image_error;
        }
      }
    }
  }
  if (failed_image >= 0) {
    return fail(kTargetOp, "input 'label', image " + std::to_string(failed_image) + ": " + error);
  }
  return MX_SUCCESS;
}

MXReturnValue target_forward_cpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource&) {
  TargetParams p;
  if (!parse_target(attrs, &p)) return MX_FAIL;
  return dispatch_float(inputs->at(0).dtype, [&](auto zero) {
    return target_forward<decltype(zero)>(p, inputs, outputs);
  });
}

MXReturnValue target_parse_attrs(const Attrs& attrs, int* num_in, int* num_out) {
  TargetParams p;
  if (!parse_target(attrs, &p)) return MX_FAIL;
  *num_in = 3;
  *num_out = 3;
  return MX_SUCCESS;
}

MXReturnValue target_infer_type(const Attrs&, std::vector<int>* in_types,
                                std::vector<int>* out_types) {
  return infer_float_type(kTargetOp, *in_types, out_types, 3);
}

MXReturnValue target_infer_shape(const Attrs&, std::vector<std::vector<unsigned>>* in,
                                 std::vector<std::vector<unsigned>>* out) {
  if (!check_all_extents(kTargetOp, {"anchor", "label", "cls_pred"}, *in)) return MX_FAIL;
  const auto& anchor = in->at(0);
  const auto& label = in->at(1);
  const auto& cls_pred = in->at(2);
  if (anchor.size() != 3 || anchor[0] != 1 || anchor[1] == 0 || anchor[2] != 4) {
    return fail(kTargetOp, "input 'anchor' must have shape (1, num_anchors, 4), got " +
                         shape_str(anchor));
  }
  if (label.size() != 3 || label[1] == 0 || label[2] < 5) {
    return fail(kTargetOp, "input 'label' must have shape (batch, num_labels, label_width >= 5) with "
                     "rows [class, xmin, ymin, xmax, ymax, ...], got " + shape_str(label));
  }
  if (cls_pred.size() != 3 || cls_pred[1] == 0) {
    return fail(kTargetOp, "input 'cls_pred' must have shape (batch, num_classes + 1, num_anchors), "
                     "got " + shape_str(cls_pred));
  }
  if (cls_pred[2] != anchor[1]) {
    return fail(kTargetOp, "input 'cls_pred' has " + std::to_string(cls_pred[2]) +
                         " anchors but 'anchor' has " + std::to_string(anchor[1]));
  }
  if (cls_pred[0] != label[0]) {
    return fail(kTargetOp, "batch size of 'cls_pred' (" + std::to_string(cls_pred[0]) +
                         ") differs from 'label' (" + std::to_string(label[0]) + ")");
  }
  out->at(0) = {label[0], anchor[1] * 4};
  out->at(1) = {label[0], anchor[1] * 4};
  out->at(2) = {label[0], anchor[1]};
  return check_extents(kTargetOp, "output 'loc_target'", out->at(0));
}

}  // namespace
}  // namespace mxssd

REGISTER_OP(MXSSD_OP_NAME(MultiBoxTarget))
    .setParseAttrs(mxssd::target_parse_attrs)
    .setInferType(mxssd::target_infer_type)
    .setInferShape(mxssd::target_infer_shape)
    .setForward(MXSSD_CPU_FORWARD(mxssd::target_forward_cpu, mxssd::target_forward_gpu), "cpu")
    .setBackward(mxssd::zero_gradients_cpu, "cpu")
#if MXSSD_REGISTER_GPU
    .setForward(mxssd::target_forward_gpu, "gpu")
    .setBackward(mxssd::zero_gradients_gpu, "gpu")
#endif
    ;  // NOLINT
