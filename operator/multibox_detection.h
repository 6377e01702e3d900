/*
 * Per-anchor pieces of MultiBoxDetection shared by the CPU implementation and the CUDA kernels.
 */
#ifndef MXSSD_MULTIBOX_DETECTION_H_
#define MXSSD_MULTIBOX_DETECTION_H_

#include "box_coding.h"

namespace mxssd {

constexpr int kRow = 6;  // [class_id, score, xmin, ymin, xmax, ymax]

/* Best non-background class of anchor i (first one on ties) and its probability; -1 when
 * no class reaches `threshold`. */
template <typename DType>
MXSSD_HD int best_class(const DType* cls_prob, int i, int num_anchors, int num_classes,
                        int background_id, float threshold, DType* score) {
  *score = DType(-1);
  int best = -1;
  for (int c = 0; c < num_classes; ++c) {
    if (c == background_id) continue;
    DType prob = cls_prob[c * num_anchors + i];
    if (prob > *score) {
      *score = prob;
      best = c;
    }
  }
  return (best < 0 || *score < threshold) ? -1 : best;
}

/* Output row of a detection: class ids are counted without the background class. */
template <typename DType>
MXSSD_HD void detection_row(int cls, DType score, const DType* anchor, const DType* loc_pred,
                            int background_id, Variances v, bool clip, DType* row) {
  row[0] = DType(cls > background_id ? cls - 1 : cls);
  row[1] = score;
  decode_box(anchor, loc_pred, v, clip, row + 2);
}

/* How many of the `count` candidates (in score order) NMS considers: at most nms_topk. */
MXSSD_HD int rows_considered(int count, int nms_topk) {
  return (nms_topk > 0 && nms_topk < count) ? nms_topk : count;
}

/* Ascending sort key of a candidate's score for the GPU's radix sort (which orders raw bits):
 * -score with -0 as +0, so that 0 and -0 scores tie as in ranks_before(). */
template <typename DType>
MXSSD_HD DType score_key(DType score) {
  return DType(0) - score;
}

/* Score order: descending, ties by candidate position (a stable sort). */
template <typename DType>
MXSSD_HD bool ranks_before(DType score_a, int a, DType score_b, int b) {
  return score_a > score_b || (score_a == score_b && a < b);
}

}  // namespace mxssd

#endif  // MXSSD_MULTIBOX_DETECTION_H_
