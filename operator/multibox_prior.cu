/*
 * MultiBoxPrior on the GPU: one thread per anchor, the same geometry as the CPU loop
 * (multibox_prior.h), plus the zero backward shared by the three operators.
 */
#include "cuda_common.cuh"
#include "multibox_prior.h"

using namespace mxnet::ext;  // NOLINT

namespace mxssd {
namespace {

template <typename DType>
__global__ void prior_kernel(PriorGrid grid, int per_cell, DType* out) {
  const long long index = global_index();
  if (index >= (long long)grid.height * grid.width * per_cell) return;
  float box[4];
  prior_anchor(grid, int(index / per_cell), int(index % per_cell), box);
  for (int c = 0; c < 4; ++c) out[index * 4 + c] = DType(box[c]);
}

}  // namespace

MXReturnValue prior_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource& res) {
  PriorParams p;
  if (!parse_prior(attrs, &p)) return MX_FAIL;
  const MXTensor& data = inputs->at(0);
  MXTensor& out = outputs->at(0);
  PriorGrid grid = make_prior_grid(p, int(data.shape[2]), int(data.shape[3]));
  const int per_cell = p.anchors_per_cell();
  const int count = grid.height * grid.width * per_cell;
  cudaStream_t stream = static_cast<cudaStream_t>(res.get_cuda_stream());
  dispatch_float(out.dtype, [&](auto zero) {
    prior_kernel<<<blocks_for(count), kThreads, 0, stream>>>(grid, per_cell,
                                                             out.data<decltype(zero)>());
    return 0;
  });
  return cuda_ok(kPriorOp, cudaPeekAtLastError()) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue zero_gradients_gpu(const Attrs&, std::vector<MXTensor>*,
                                 std::vector<MXTensor>* outputs, const OpResource& res) {
  for (MXTensor& grad : *outputs) {
    size_t bytes = grad.size() * (grad.dtype == kFloat64 ? 8 : 4);
    if (!cuda_ok("MultiBox backward",
                 cudaMemsetAsync(grad.data_ptr, 0, bytes,
                                 static_cast<cudaStream_t>(res.get_cuda_stream())))) {
      return MX_FAIL;
    }
  }
  return MX_SUCCESS;
}

}  // namespace mxssd
