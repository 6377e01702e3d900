/*
 * Parameters of the three MultiBox operators: parsing from MXNet's string attributes,
 * validation with messages that name the operator and the argument, and the declarations
 * shared by the CPU (.cc) and CUDA (.cu) implementations.
 *
 * Names, defaults and meaning are those of MXNet's mx.nd.contrib.MultiBox* operators.
 */
#ifndef MXSSD_MULTIBOX_PARAMS_H_
#define MXSSD_MULTIBOX_PARAMS_H_

#include <string>
#include <unordered_map>
#include <vector>

#include "mxnet/lib_api.h"
#include "box_coding.h"

namespace mxssd {

using Attrs = std::unordered_map<std::string, std::string>;
using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

// The registered operator names, used in every error message.
constexpr const char* kPriorOp = "MultiBoxPrior";
constexpr const char* kTargetOp = "MultiBoxTarget";
constexpr const char* kDetectionOp = "MultiBoxDetection";

constexpr int kMaxPriorShapes = 64;  // anchors per cell; ample for any SSD preset

struct PriorParams {
  std::vector<float> sizes{1.f};
  std::vector<float> ratios{1.f};
  bool clip = false;
  float steps[2] = {-1.f, -1.f};    // (y, x); <= 0 means 1 / feature-map size
  float offsets[2] = {0.5f, 0.5f};  // (y, x)
  int anchors_per_cell() const { return int(sizes.size() + ratios.size()) - 1; }
};

struct TargetParams {
  float overlap_threshold = 0.5f;
  float ignore_label = -1.f;
  float negative_mining_ratio = -1.f;
  float negative_mining_thresh = 0.5f;
  int minimum_negative_samples = 0;
  Variances variances{0.1f, 0.1f, 0.2f, 0.2f};
};

struct DetectionParams {
  bool clip = true;
  float threshold = 0.01f;
  int background_id = 0;
  float nms_threshold = 0.5f;
  bool force_suppress = false;
  Variances variances{0.1f, 0.1f, 0.2f, 0.2f};
  int nms_topk = -1;
};

/* Each parser fills `params` and returns false after reporting an MXNet error message
 * ("MultiBoxPrior: argument 'sizes' ...") when an attribute is unknown or invalid. */
bool parse_prior(const Attrs& attrs, PriorParams* params);
bool parse_target(const Attrs& attrs, TargetParams* params);
bool parse_detection(const Attrs& attrs, DetectionParams* params);

/* Calls fn(float()) or fn(double()) after the inputs' dtype (float32 or float64; infer_type
 * admits no other), so each forward is written once as a template. */
template <typename Fn>
auto dispatch_float(int dtype, Fn fn) {
  return dtype == mxnet::ext::kFloat64 ? fn(double(0)) : fn(float(0));
}

/* Reports `message` as the error MXNet raises, prefixed with the operator name. */
MXReturnValue fail(const char* op, const std::string& message);

/* Shape text such as "(2,3,4)" for error messages. */
std::string shape_str(const std::vector<unsigned int>& shape);

/* Fails (naming `op` and `what`) unless every dimension of `shape` is known and positive and
 * the element count fits the kernels' int indexing.  MXNet passes a zero-size or unknown
 * dimension as 0 or 2^32 - 1, which the shape rules alone would let through. */
MXReturnValue check_extents(const char* op, const char* what,
                            const std::vector<unsigned int>& shape);

/* check_extents() for every shape of `shapes`, named input 'names[i]'. */
MXReturnValue check_all_extents(const char* op, const std::vector<const char*>& names,
                                const std::vector<std::vector<unsigned int>>& shapes);

/* All inputs must share one floating dtype (float32 or float64); outputs get it too. */
MXReturnValue infer_float_type(const char* op, const std::vector<int>& in_types,
                               std::vector<int>* out_types, int num_outputs);

/* The operators have no trainable inputs: their gradients are zero. */
MXReturnValue zero_gradients_cpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource& res);

#if MXSSD_WITH_CUDA
MXReturnValue zero_gradients_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource& res);
MXReturnValue prior_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource& res);
MXReturnValue target_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                 std::vector<MXTensor>* outputs, const OpResource& res);
MXReturnValue detection_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* inputs,
                                    std::vector<MXTensor>* outputs, const OpResource& res);
#endif

/* Registration: the CUDA build adds "gpu" forwards.  The emulated GPU build of the test harness
 * (tests/gpu_emulation) registers the operators as <name>_emulated instead, whose "cpu" forward
 * runs the *_gpu entry point on HIP-CPU. */
#if MXSSD_EMULATED_GPU
using Forward = MXReturnValue (*)(const Attrs&, std::vector<MXTensor>*, std::vector<MXTensor>*,
                                  const OpResource&);
MXReturnValue run_emulated(Forward gpu_forward, const Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res);
template <Forward gpu_forward>
MXReturnValue emulated_forward(const Attrs& attrs, std::vector<MXTensor>* inputs,
                               std::vector<MXTensor>* outputs, const OpResource& res) {
  return run_emulated(gpu_forward, attrs, inputs, outputs, res);
}
#define MXSSD_OP_NAME(name) name##_emulated
#define MXSSD_CPU_FORWARD(cpu_forward, gpu_forward) mxssd::emulated_forward<gpu_forward>
#define MXSSD_REGISTER_GPU 0
#else
#define MXSSD_OP_NAME(name) name
#define MXSSD_CPU_FORWARD(cpu_forward, gpu_forward) cpu_forward
#define MXSSD_REGISTER_GPU MXSSD_WITH_CUDA
#endif

}  // namespace mxssd

#endif  // MXSSD_MULTIBOX_PARAMS_H_
