/*
 * MultiBoxDetection: decode SSD predictions into scored boxes and apply per-class NMS.
 *
 * Output (N, A, 6) rows [class_id, score, xmin, ymin, xmax, ymax]: the anchors whose best
 * non-background probability reaches `threshold`, sorted by score (stable), at most
 * `nms_topk` of them considered; suppressed rows get class -1 but keep score and box; unused
 * rows are all -1.  Identical to MXNet's _contrib_MultiBoxDetection, including what it
 * leaves in the rows past nms_topk (class -1, the unsorted candidate at that position).
 *
 * Faster than MXNet's kernel because NMS only compares boxes of the same class (unless
 * force_suppress) instead of all pairs, only the top-k are sorted, and images run in parallel.
 */
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "multibox_detection.h"
#include "multibox_params.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

template <typename DType>
struct Scratch {
  std::vector<DType> candidates;           // compacted rows before sorting
  std::vector<int> order;                  // candidate indices by descending score
  std::vector<std::vector<int>> by_class;  // output rows of each class, in score order
};

/* Best non-background class of every anchor; rows above the threshold are written to `out`
 * in anchor order.  Returns how many. */
template <typename DType>
int decode_candidates(const DType* cls_prob, const DType* loc_pred, const DType* anchors,
                      int num_classes, int num_anchors, const DetectionParams& p, DType* out) {
  int count = 0;
  for (int i = 0; i < num_anchors; ++i) {
    DType score;
    int cls = best_class(cls_prob, i, num_anchors, num_classes, p.background_id, p.threshold,
                         &score);
    if (cls < 0) continue;
    detection_row(cls, score, anchors + i * 4, loc_pred + i * 4, p.background_id, p.variances,
                  p.clip, out + count * kRow);
    ++count;
  }
  return count;
}

/* Greedy NMS over rows [0, count) of `out` (already in score order): a kept row
 * suppresses every later row of the same class (any class with force_suppress) whose
 * IoU with it reaches the threshold. */
template <typename DType>
void suppress_rows(const std::vector<int>& rows, float nms_threshold, DType* out) {
  for (size_t a = 0; a < rows.size(); ++a) {
    const DType* keep = out + rows[a] * kRow;
    if (keep[0] < 0) continue;
    for (size_t b = a + 1; b < rows.size(); ++b) {
      DType* other = out + rows[b] * kRow;
      if (other[0] >= 0 && nms_iou(keep + 2, other + 2) >= nms_threshold) other[0] = -1;
    }
  }
}

template <typename DType>
void non_maximum_suppression(int count, int num_classes, const DetectionParams& p, DType* out,
                             Scratch<DType>* w) {
  if (p.force_suppress) {
    w->order.resize(count);
    std::iota(w->order.begin(), w->order.end(), 0);
    suppress_rows(w->order, p.nms_threshold, out);
    return;
  }
  // Rows of different classes never suppress each other, so NMS runs per class.
  w->by_class.resize(num_classes);
  for (auto& rows : w->by_class) rows.clear();
  for (int i = 0; i < count; ++i) w->by_class[int(out[i * kRow])].push_back(i);
  for (const auto& rows : w->by_class) suppress_rows(rows, p.nms_threshold, out);
}

template <typename DType>
void image_detections(const DType* cls_prob, const DType* loc_pred, const DType* anchors,
                      int num_classes, int num_anchors, const DetectionParams& p, DType* out,
                      Scratch<DType>* w) {
  std::fill(out, out + size_t(num_anchors) * kRow, DType(-1));
  const int count = decode_candidates(cls_prob, loc_pred, anchors, num_classes, num_anchors, p, out);
  if (count == 0) return;
  w->candidates.assign(out, out + size_t(count) * kRow);
  w->order.resize(count);
  std::iota(w->order.begin(), w->order.end(), 0);
  const int keep = rows_considered(count, p.nms_topk);
  const DType* cand = w->candidates.data();
  std::partial_sort(w->order.begin(), w->order.begin() + keep, w->order.end(),
                    [cand](int a, int b) {
                      return ranks_before(cand[a * kRow + 1], a, cand[b * kRow + 1], b);
                    });
  for (int i = keep; i < count; ++i) out[i * kRow] = -1;
  for (int i = 0; i < keep; ++i) {
    std::copy(cand + w->order[i] * kRow, cand + (w->order[i] + 1) * kRow, out + i * kRow);
  }
  non_maximum_suppression(keep, num_classes, p, out, w);
}

template <typename DType>
void detection_forward(const DetectionParams& p, std::vector<MXTensor>* inputs, MXTensor* out) {
  MXTensor& cls_prob = inputs->at(0);
  const int batch = int(cls_prob.shape[0]);
  const int num_classes = int(cls_prob.shape[1]);
  const int num_anchors = int(cls_prob.shape[2]);
#pragma omp parallel
  {
    Scratch<DType> scratch;
#pragma omp for schedule(dynamic)
    for (int n = 0; n < batch; ++n) {
      image_detections(cls_prob.data<DType>() + size_t(n) * num_classes * num_anchors,
                       inputs->at(1).data<DType>() + size_t(n) * num_anchors * 4,
                       inputs->at(2).data<DType>(), num_classes, num_anchors, p,
                       out->data<DType>() + size_t(n) * num_anchors * kRow, &scratch);
    }
  }
}

MXReturnValue detection_forward_cpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                    std::vector<MXTensor>* outputs, const OpResource&) {
  DetectionParams p;
  if (!parse_detection(attrs, &p)) return MX_FAIL;
  dispatch_float(inputs->at(0).dtype, [&](auto zero) {
    detection_forward<decltype(zero)>(p, inputs, &outputs->at(0));
    return 0;
  });
  return MX_SUCCESS;
}

MXReturnValue detection_parse_attrs(const Attrs& attrs, int* num_in, int* num_out) {
  DetectionParams p;
  if (!parse_detection(attrs, &p)) return MX_FAIL;
  *num_in = 3;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue detection_infer_type(const Attrs&, std::vector<int>* in_types,
                                   std::vector<int>* out_types) {
  return infer_float_type(kDetectionOp, *in_types, out_types, 1);
}

MXReturnValue detection_infer_shape(const Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                                    std::vector<std::vector<unsigned>>* out) {
  DetectionParams p;
  if (!parse_detection(attrs, &p)) return MX_FAIL;
  if (!check_all_extents(kDetectionOp, {"cls_prob", "loc_pred", "anchor"}, *in)) return MX_FAIL;
  const auto& cls_prob = in->at(0);
  const auto& loc_pred = in->at(1);
  const auto& anchor = in->at(2);
  if (anchor.size() != 3 || anchor[0] != 1 || anchor[1] == 0 || anchor[2] != 4) {
    return fail(kDetectionOp, "input 'anchor' must have shape (1, num_anchors, 4), got " +
                         shape_str(anchor));
  }
  if (cls_prob.size() != 3 || cls_prob[1] < 2) {
    return fail(kDetectionOp, "input 'cls_prob' must have shape (batch, num_classes + 1 >= 2, "
                     "num_anchors), got " + shape_str(cls_prob));
  }
  if (cls_prob[2] != anchor[1]) {
    return fail(kDetectionOp, "input 'cls_prob' has " + std::to_string(cls_prob[2]) +
                         " anchors but 'anchor' has " + std::to_string(anchor[1]));
  }
  if (loc_pred.size() != 2 || loc_pred[0] != cls_prob[0] || loc_pred[1] != anchor[1] * 4) {
    return fail(kDetectionOp, "input 'loc_pred' must have shape (batch, 4 * num_anchors) = (" +
                         std::to_string(cls_prob[0]) + "," + std::to_string(anchor[1] * 4) +
                         "), got " + shape_str(loc_pred));
  }
  if (unsigned(p.background_id) >= cls_prob[1]) {
    return fail(kDetectionOp, "argument 'background_id' (" + std::to_string(p.background_id) +
                         ") must be less than the number of classes in 'cls_prob' (" +
                         std::to_string(cls_prob[1]) + ")");
  }
  out->at(0) = {cls_prob[0], anchor[1], unsigned(kRow)};
  return check_extents(kDetectionOp, "output", out->at(0));
}

}  // namespace
}  // namespace mxssd

REGISTER_OP(MXSSD_OP_NAME(MultiBoxDetection))
    .setParseAttrs(mxssd::detection_parse_attrs)
    .setInferType(mxssd::detection_infer_type)
    .setInferShape(mxssd::detection_infer_shape)
    .setForward(MXSSD_CPU_FORWARD(mxssd::detection_forward_cpu, mxssd::detection_forward_gpu), "cpu")
    .setBackward(mxssd::zero_gradients_cpu, "cpu")
#if MXSSD_REGISTER_GPU
    .setForward(mxssd::detection_forward_gpu, "gpu")
    .setBackward(mxssd::zero_gradients_gpu, "gpu")
#endif
    ;  // NOLINT
