/*
 * Box geometry shared by the CPU and CUDA kernels: the one place where anchors are
 * generated, boxes are encoded to / decoded from regression offsets and IoU is computed.
 *
 * Every expression keeps the operation order of MXNet's contrib kernels so that the
 * float results are bit-identical to them (the library is built with -ffp-contract=off
 * for the same reason: a fused multiply-add would round differently).
 */
#ifndef MXSSD_BOX_CODING_H_
#define MXSSD_BOX_CODING_H_

#include <cmath>

#if defined(__CUDACC__)
#define MXSSD_HD __host__ __device__ __forceinline__
#else
#define MXSSD_HD inline
#endif

namespace mxssd {

/* expf for float like MXNet's std::exp(float); a bare exp() would promote to double. */
MXSSD_HD float exp_of(float x) { return expf(x); }
MXSSD_HD double exp_of(double x) { return exp(x); }

/*! Centre-size variances used to scale regression targets (x, y, w, h). */
struct Variances {
  float x, y, w, h;
};

/*! Corner box [xmin, ymin, xmax, ymax] of one anchor of a MultiBoxPrior grid cell. */
MXSSD_HD void anchor_box(float center_x, float center_y, float half_w, float half_h,
                         bool clip, float* out) {
  out[0] = center_x - half_w;
  out[1] = center_y - half_h;
  out[2] = center_x + half_w;
  out[3] = center_y + half_h;
  if (clip) {
    for (int k = 0; k < 4; ++k) out[k] = out[k] < 0.f ? 0.f : (out[k] > 1.f ? 1.f : out[k]);
  }
}

/*! Intersection over union as MultiBoxTarget computes it (0 when the union is empty). */
template <typename DType>
MXSSD_HD DType match_iou(const DType* a, const DType* b) {
  DType iw = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
  DType ih = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
  DType inter = (iw > DType(0) ? iw : DType(0)) * (ih > DType(0) ? ih : DType(0));
  DType uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni == DType(0) ? DType(0) : inter / uni;
}

/*! Intersection over union as MultiBoxDetection's NMS computes it. */
template <typename DType>
MXSSD_HD DType nms_iou(const DType* a, const DType* b) {
  DType iw = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
  DType ih = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
  DType inter = (DType(0) > iw ? DType(0) : iw) * (DType(0) > ih ? DType(0) : ih);
  DType uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni <= DType(0) ? DType(0) : inter / uni;
}

/*! Regression target of ground truth `gt` relative to `anchor` (both corner boxes). */
template <typename DType>
MXSSD_HD void encode_box(const DType* anchor, const DType* gt, Variances v, DType* out) {
  float aw = float(anchor[2]) - float(anchor[0]);
  float ah = float(anchor[3]) - float(anchor[1]);
  float ax = (float(anchor[0]) + float(anchor[2])) * 0.5f;
  float ay = (float(anchor[1]) + float(anchor[3])) * 0.5f;
  float gw = float(gt[2]) - float(gt[0]);
  float gh = float(gt[3]) - float(gt[1]);
  float gx = (float(gt[0]) + float(gt[2])) * 0.5f;
  float gy = (float(gt[1]) + float(gt[3])) * 0.5f;
  out[0] = DType((gx - ax) / aw / v.x);
  out[1] = DType((gy - ay) / ah / v.y);
  out[2] = DType(logf(gw / aw) / v.w);
  out[3] = DType(logf(gh / ah) / v.h);
}

/*! Corner box predicted by regression offsets `pred` relative to `anchor`. */
template <typename DType>
MXSSD_HD void decode_box(const DType* anchor, const DType* pred, Variances v, bool clip,
                         DType* out) {
  DType aw = anchor[2] - anchor[0];
  DType ah = anchor[3] - anchor[1];
  DType ax = (anchor[0] + anchor[2]) / DType(2);
  DType ay = (anchor[1] + anchor[3]) / DType(2);
  DType ox = pred[0] * DType(v.x) * aw + ax;
  DType oy = pred[1] * DType(v.y) * ah + ay;
  DType ow = exp_of(pred[2] * DType(v.w)) * aw / DType(2);
  DType oh = exp_of(pred[3] * DType(v.h)) * ah / DType(2);
  DType box[4] = {ox - ow, oy - oh, ox + ow, oy + oh};
  for (int k = 0; k < 4; ++k) {
    out[k] = clip ? (box[k] < DType(0) ? DType(0) : (box[k] > DType(1) ? DType(1) : box[k]))
                  : box[k];
  }
}

}  // namespace mxssd

#endif  // MXSSD_BOX_CODING_H_
