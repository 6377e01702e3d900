/*
 * MultiBoxPrior: anchor boxes for every cell of a feature map.
 *
 * Output (1, H*W*(len(sizes)+len(ratios)-1), 4) corner boxes, row-major over cells; per cell
 * first every size at ratio 1, then every other ratio with sizes[0] (Caffe's PriorBox order).
 */
#include <string>

#include "multibox_params.h"
#include "multibox_prior.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

MXReturnValue prior_parse_attrs(const Attrs& attrs, int* num_in, int* num_out) {
  PriorParams p;
  if (!parse_prior(attrs, &p)) return MX_FAIL;
  *num_in = 1;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue prior_infer_type(const Attrs&, std::vector<int>* in_types,
                               std::vector<int>* out_types) {
  return infer_float_type(kPriorOp, *in_types, out_types, 1);
}

MXReturnValue prior_infer_shape(const Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                                std::vector<std::vector<unsigned>>* out) {
  PriorParams p;
  if (!parse_prior(attrs, &p)) return MX_FAIL;
  if (!check_all_extents(kPriorOp, {"data"}, *in)) return MX_FAIL;
  const auto& data = in->at(0);
  if (data.size() != 4 || data[2] == 0 || data[3] == 0) {
    return fail(kPriorOp, "input 'data' must be a 4-D (batch, channel, height, width) "
                                 "feature map, got shape " + shape_str(data));
  }
  const unsigned long long anchors = 1ULL * data[2] * data[3] * unsigned(p.anchors_per_cell());
  if (anchors * 4 >= (1ULL << 31)) {
    return fail(kPriorOp, "output would have " + std::to_string(anchors) + " anchors of a " +
                              shape_str(data) + " feature map: 2^31 values or more");
  }
  out->at(0) = {1u, unsigned(anchors), 4u};
  return MX_SUCCESS;
}

template <typename DType>
void prior_forward(const PriorParams& p, int height, int width, DType* out) {
  PriorGrid grid = make_prior_grid(p, height, width);
  const int per_cell = p.anchors_per_cell();
  // Even SSD512's largest map has only ~16k anchors: threads would cost more than they save.
  for (int cell = 0; cell < height * width; ++cell) {
    float box[4];
    for (int k = 0; k < per_cell; ++k) {
      prior_anchor(grid, cell, k, box);
      for (int c = 0; c < 4; ++c) out[(cell * per_cell + k) * 4 + c] = DType(box[c]);
    }
  }
}

MXReturnValue prior_forward_cpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource&) {
  PriorParams p;
  if (!parse_prior(attrs, &p)) return MX_FAIL;
  const MXTensor& data = inputs->at(0);
  MXTensor& out = outputs->at(0);
  const int height = int(data.shape[2]), width = int(data.shape[3]);
  dispatch_float(out.dtype, [&](auto zero) {
    prior_forward(p, height, width, out.data<decltype(zero)>());
    return 0;
  });
  return MX_SUCCESS;
}

}  // namespace
}  // namespace mxssd

REGISTER_OP(MXSSD_OP_NAME(MultiBoxPrior))
    .setParseAttrs(mxssd::prior_parse_attrs)
    .setInferType(mxssd::prior_infer_type)
    .setInferShape(mxssd::prior_infer_shape)
    .setForward(MXSSD_CPU_FORWARD(mxssd::prior_forward_cpu, mxssd::prior_forward_gpu), "cpu")
    .setBackward(mxssd::zero_gradients_cpu, "cpu")
#if MXSSD_REGISTER_GPU
    .setForward(mxssd::prior_forward_gpu, "gpu")
    .setBackward(mxssd::zero_gradients_gpu, "gpu")
#endif
    ;  // NOLINT
