/*
 * Per-anchor pieces of MultiBoxTarget shared by the CPU implementation and the CUDA kernels.
 */
#ifndef MXSSD_MULTIBOX_TARGET_H_
#define MXSSD_MULTIBOX_TARGET_H_

#include "box_coding.h"

namespace mxssd {

enum AnchorFlag : signed char { kIgnored = -1, kNegative = 0, kPositive = 1 };

constexpr float kMinMatchIoU = 1e-6f;  // bipartite pairs must overlap more than this

/* Number of leading real ground truths: a row with class -1 ends the list.  Sets
 * *bad_row to the first padding row whose coordinates are not all -1 (else -1). */
template <typename DType>
MXSSD_HD int count_ground_truths(const DType* labels, int num_labels, int label_width,
                                 int* bad_row) {
  *bad_row = -1;
  for (int i = 0; i < num_labels; ++i) {
    const DType* row = labels + i * label_width;
    if (static_cast<float>(row[0]) != -1.f) continue;
    for (int c = 1; c < 5; ++c) {
      if (static_cast<float>(row[c]) != -1.f) *bad_row = i;
    }
    return i;
  }
  return num_labels;
}

/* Softmax probability of the background class from the logits, in MXNet's order of
 * operations (so hard-negative ranking ties break identically). */
template <typename DType>
MXSSD_HD DType background_probability(const DType* cls_pred, int anchor, int num_anchors,
                                       int num_classes) {
  DType max_val = cls_pred[anchor];
  for (int c = 1; c < num_classes; ++c) {
    DType v = cls_pred[anchor + num_anchors * c];
    if (v > max_val) max_val = v;
  }
  DType sum = 0;
  for (int c = 0; c < num_classes; ++c) sum += exp_of(cls_pred[anchor + num_anchors * c] - max_val);
  return exp_of(cls_pred[anchor] - max_val) / sum;
}

/* The next pair of greedy bipartite matching: among the unmatched ground truths that still
 * have a free anchor (best_anchor[k] >= 0; with more ground truths than anchors some have
 * none and are skipped, as in MXNet's contrib operator), the one whose best free anchor has
 * the highest IoU above kMinMatchIoU, ties to the lower anchor index.  iou(k, j) gives the
 * IoU of ground truth k and anchor j (stored on the CPU, recomputed on the GPU).
 * Returns the ground truth (-1 when no pair is left) and its IoU in *pick_iou. */
template <typename DType, typename IoU>
MXSSD_HD int next_bipartite_pair(int num_gt, const int* best_anchor, const char* gt_matched,
                                 IoU iou, DType* pick_iou) {
  int pick = -1;
  *pick_iou = DType(kMinMatchIoU);
  for (int k = 0; k < num_gt; ++k) {
    const int j = best_anchor[k];
    if (gt_matched[k] || j < 0) continue;
    const DType v = iou(k, j);
    if (v > *pick_iou || (pick >= 0 && v == *pick_iou && j < best_anchor[pick])) {
      pick = k;
      *pick_iou = v;
    }
  }
  return pick;
}

/* Key by which hard negatives are ranked (ascending, ties by anchor): the background
 * probability, with NaN (from non-finite logits) ranked last and -0 as +0, so that the CPU's
 * comparison sort and the GPU's radix sort (which orders raw bits) agree on every input. */
template <typename DType>
MXSSD_HD DType mining_key(DType background_probability) {
  return background_probability == background_probability ? background_probability + DType(0)
                                                          : DType(2);
}

/* How many hard negatives to mine: ratio x positives (truncated like MXNet), at least the
 * minimum, at most the anchors that are not positive. */
MXSSD_HD int negatives_to_mine(int num_positive, int num_anchors, float ratio, int minimum) {
  const int most = num_anchors - num_positive;
  const float wanted = num_positive * ratio;  // clamped before the cast: no int overflow
  int n = wanted >= float(most) ? most : static_cast<int>(wanted);
  if (n < minimum) n = minimum;
  return n > most ? most : n;
}

/* Threshold matching: an anchor not taken by the bipartite step becomes positive when its
 * best ground truth overlaps more than the threshold (only a threshold > 0 matches). */
template <typename DType>
MXSSD_HD bool is_threshold_match(DType best_iou, int match, float overlap_threshold) {
  return overlap_threshold > 0.f && match >= 0 && best_iou > DType(overlap_threshold);
}

/* Hard-negative mining considers the unmatched anchors that overlap no object much. */
template <typename DType>
MXSSD_HD bool is_mining_candidate(signed char flag, DType best_iou, float mining_thresh) {
  return flag == kIgnored && best_iou < DType(mining_thresh);
}

/* Whether an image gets negatives at all: without objects MXNet's CPU kernel ignores every
 * anchor; a positive minimum_negative_samples makes such images teach background. */
MXSSD_HD bool image_has_negatives(int num_gt, int minimum_negative_samples) {
  return num_gt > 0 || minimum_negative_samples > 0;
}

/* Targets of one anchor from its flag and matched ground-truth row. */
template <typename DType>
MXSSD_HD void write_anchor_target(signed char flag, const DType* anchor, const DType* gt_row,
                                  Variances v, float ignore_label, DType* loc, DType* mask,
                                  DType* cls) {
  if (flag == kPositive) {
    *cls = gt_row[0] + DType(1);  // 0 is background
    encode_box(anchor, gt_row + 1, v, loc);
    for (int c = 0; c < 4; ++c) mask[c] = DType(1);
  } else {
    *cls = flag == kNegative ? DType(0) : DType(ignore_label);
    for (int c = 0; c < 4; ++c) loc[c] = mask[c] = DType(0);
  }
}

}  // namespace mxssd

#endif  // MXSSD_MULTIBOX_TARGET_H_
