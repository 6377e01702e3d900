/*
 * Anchor geometry of MultiBoxPrior, shared by the CPU loop and the CUDA kernel.
 */
#ifndef MXSSD_MULTIBOX_PRIOR_H_
#define MXSSD_MULTIBOX_PRIOR_H_

#include <cmath>

#include "box_coding.h"
#include "multibox_params.h"

namespace mxssd {


/* Everything a kernel needs, by value, so it can be passed to a CUDA launch. */
struct PriorGrid {
  int height, width;
  float step_y, step_x, offset_y, offset_x;
  bool clip;
  int num_sizes, num_ratios;
  float half_w[kMaxPriorShapes], half_h[kMaxPriorShapes];  // per anchor of a cell
};

/* Half widths/heights follow MXNet's float expressions exactly
 * (size * H / W / 2 and size * H / W * sqrt(r) / 2). */
inline PriorGrid make_prior_grid(const PriorParams& p, int height, int width) {
  PriorGrid g;
  g.height = height;
  g.width = width;
  bool automatic = p.steps[0] <= 0.f || p.steps[1] <= 0.f;
  g.step_y = automatic ? 1.f / height : p.steps[0];
  g.step_x = automatic ? 1.f / width : p.steps[1];
  g.offset_y = p.offsets[0];
  g.offset_x = p.offsets[1];
  g.clip = p.clip;
  g.num_sizes = int(p.sizes.size());
  g.num_ratios = int(p.ratios.size());
  int k = 0;
  for (float size : p.sizes) {
    g.half_w[k] = size * height / width / 2;
    g.half_h[k] = size / 2;
    ++k;
  }
  for (int j = 1; j < g.num_ratios; ++j) {
    float ratio = sqrtf(p.ratios[j]);
    g.half_w[k] = p.sizes[0] * height / width * ratio / 2;
    g.half_h[k] = p.sizes[0] / ratio / 2;
    ++k;
  }
  return g;
}

/* Box of anchor k of grid cell `cell` (row-major). */
MXSSD_HD void prior_anchor(const PriorGrid& g, int cell, int k, float* box) {
  int r = cell / g.width, c = cell % g.width;
  float center_y = (r + g.offset_y) * g.step_y;
  float center_x = (c + g.offset_x) * g.step_x;
  anchor_box(center_x, center_y, g.half_w[k], g.half_h[k], g.clip, box);
}

}  // namespace mxssd

#endif  // MXSSD_MULTIBOX_PRIOR_H_
