/*
 * Standalone GPU check of the MultiBox operators, no MXNet GPU build needed: each *_gpu
 * forward and its CPU twin run on the same random inputs (SSD300 / SSD512 anchors, batch
 * 1 / 8 / 32, 1000 label rows) with cudaMalloc'd buffers; outputs are compared with the
 * tolerance below and the GPU forwards are timed with CUDA events.
 *
 *   device_check             GPU vs CPU (exit 1 on a mismatch, 2 without a usable GPU)
 *   device_check --self-test  CPU only: the CPU side, the comparison and its tolerance
 *                             logic (a corrupted output must be reported)
 *   device_check --quick      fewer cases (for compute-sanitizer)
 *
 * Tolerance: GPU expf/logf differ from the CPU's by 1-2 ulp, so float values may differ by
 * 1e-4 + 1e-4 |x|, and up to 0.1% of anchors (at least 1) may get another class target or
 * mask, or detections another class id, where ulp-level differences reorder near-ties.
 */
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"

using namespace mxnet::ext;  // NOLINT
using Attrs = std::unordered_map<std::string, std::string>;

namespace {

struct Case {
  const char* op;
  std::string name;
  std::vector<std::vector<int64_t>> input_shapes;
  std::vector<std::vector<float>> inputs;
  Attrs attrs;
};

CustomOp* find_op(const char* name) {
  auto* registry = Registry<CustomOp>::get();
  for (int i = 0; i < registry->size(); ++i) {
    CustomOp& op = registry->get(i);
    if (std::strcmp(op.name, name) == 0) {
      op.mapToVector();
      return &op;
    }
  }
  return nullptr;
}

fcomp_t forward_of(CustomOp* op, const char* ctx) {
  for (size_t i = 0; i < op->forward_ctx_cstr.size(); ++i) {
    if (std::strcmp(op->forward_ctx_cstr[i], ctx) == 0) return op->forward_fp[i];
  }
  return nullptr;
}

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

/* SSD-like anchors: a grid of square and 2:1 boxes per feature map. */
std::vector<float> anchors(int size, std::vector<int64_t>* shape) {
  std::vector<int> sides = size == 300 ? std::vector<int>{38, 19, 10, 5, 3, 1}
                                       : std::vector<int>{64, 32, 16, 8, 4, 2, 1};
  std::vector<int> per_cell = size == 300 ? std::vector<int>{4, 6, 6, 6, 4, 4}
                                          : std::vector<int>{4, 6, 6, 6, 6, 4, 4};
  std::vector<float> out;
  for (size_t l = 0; l < sides.size(); ++l) {
    float scale = 0.1f + 0.8f * l / sides.size();
    for (int r = 0; r < sides[l]; ++r)
      for (int c = 0; c < sides[l]; ++c)
        for (int k = 0; k < per_cell[l]; ++k) {
          float cx = (c + 0.5f) / sides[l], cy = (r + 0.5f) / sides[l];
          float w = scale * (k % 2 ? 1.41f : 1.f) / 2, h = scale / (k % 2 ? 1.41f : 1.f) / 2;
          out.insert(out.end(), {cx - w, cy - h, cx + w, cy + h});
        }
  }
  *shape = {1, int64_t(out.size() / 4), 4};
  return out;
}

std::vector<Case> make_cases(bool quick) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<Case> cases;
  for (int size : {300, 512}) {
    for (int batch : quick ? std::vector<int>{1, 8} : std::vector<int>{1, 8, 32}) {
      std::vector<int64_t> anchor_shape;
      std::vector<float> anchor = anchors(size, &anchor_shape);
      const int64_t A = anchor_shape[1], rows = 1000, classes = 21;
      std::vector<float> labels(batch * rows * 6, -1.f);
      for (int n = 0; n < batch; ++n) {
        int objects = 1 + int(unit(rng) * 40);
        for (int k = 0; k < objects; ++k) {
          float* row = labels.data() + (n * rows + k) * 6;
          float x = unit(rng) * 0.8f, y = unit(rng) * 0.8f;
          row[0] = float(int(unit(rng) * 20));
          row[1] = x, row[2] = y;
          row[3] = std::min(1.f, x + 0.05f + unit(rng) * 0.5f);
          row[4] = std::min(1.f, y + 0.05f + unit(rng) * 0.5f);
          row[5] = 0.f;
        }
      }
      std::vector<float> logits(batch * classes * A), loc(batch * A * 4), prob(logits.size());
      for (float& v : logits) v = normal(rng) * 2;
      for (float& v : loc) v = normal(rng) * 0.3f;
      for (int n = 0; n < batch; ++n)
        for (int64_t j = 0; j < A; ++j) {
          float sum = 0;
          for (int c = 0; c < classes; ++c) sum += std::exp(logits[(n * classes + c) * A + j]);
          for (int c = 0; c < classes; ++c)
            prob[(n * classes + c) * A + j] = std::exp(logits[(n * classes + c) * A + j]) / sum;
        }
      std::string tag = "SSD" + std::to_string(size) + " batch " + std::to_string(batch);
      cases.push_back({"MultiBoxTarget", tag + ", 1000 label rows",
                       {anchor_shape, {batch, rows, 6}, {batch, classes, A}},
                       {anchor, labels, logits},
                       {{"negative_mining_ratio", "3"}, {"overlap_threshold", "0.5"}}});
      cases.push_back({"MultiBoxDetection", tag,
                       {{batch, classes, A}, {batch, A * 4}, anchor_shape},
                       {prob, loc, anchor},
                       {{"nms_threshold", "0.45"}, {"nms_topk", "400"}, {"threshold", "0.01"}}});
    }
    const int side = size == 300 ? 38 : 64;
    std::vector<int64_t> data_shape{1, 1, side, side};
    cases.push_back({"MultiBoxPrior", "SSD" + std::to_string(size) + " first map",
                     {data_shape}, {std::vector<float>(side * side, 0.f)},
                     {{"sizes", "(0.1, 0.141)"}, {"ratios", "(1, 2, 0.5)"}, {"clip", "1"}}});
  }
  return cases;
}

/* Output shapes from the operator's own shape inference. */
std::vector<std::vector<int64_t>> output_shapes(CustomOp* op, const Case& c) {
  std::vector<std::vector<unsigned>> in, out;
  for (const auto& s : c.input_shapes) in.emplace_back(s.begin(), s.end());
  int num_in = 0, num_out = 0;
  op->parse_attrs(c.attrs, &num_in, &num_out);
  out.resize(num_out);
  op->infer_shape(c.attrs, &in, &out);
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& s : out) shapes.emplace_back(s.begin(), s.end());
  return shapes;
}

struct Outputs {
  std::vector<std::vector<float>> values;
  double milliseconds = 0;
  bool ok = false;
};

Outputs run_cpu(fcomp_t forward, const Case& c, const std::vector<std::vector<int64_t>>& out_shapes) {
  Outputs result;
  std::vector<std::vector<float>> inputs = c.inputs;
  std::vector<MXTensor> in, out;
  for (size_t i = 0; i < inputs.size(); ++i)
    in.emplace_back(inputs[i].data(), c.input_shapes[i], kFloat32, 0, MXContext::CPU());
  for (const auto& s : out_shapes) result.values.emplace_back(count(s), NAN);
  for (size_t i = 0; i < out_shapes.size(); ++i)
    out.emplace_back(result.values[i].data(), out_shapes[i], kFloat32, 0, MXContext::CPU());
  OpResource res(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  auto start = std::chrono::steady_clock::now();
  result.ok = forward(c.attrs, &in, &out, res) == MX_SUCCESS;
  result.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::vector<void*>* g_allocations = nullptr;

void* gpu_malloc(void*, int bytes) {
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, bytes > 0 ? bytes : 1) != cudaSuccess) return nullptr;
  cudaMemset(ptr, 0xA5, bytes > 0 ? bytes : 1);  // uninitialised reads show up as mismatches
  g_allocations->push_back(ptr);
  return ptr;
}

Outputs run_gpu(fcomp_t forward, const Case& c, const std::vector<std::vector<int64_t>>& out_shapes) {
  Outputs result;
  std::vector<void*> buffers, allocations;
  g_allocations = &allocations;
  std::vector<MXTensor> in, out;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    void* ptr = nullptr;
    cudaMalloc(&ptr, c.inputs[i].size() * 4);
    cudaMemcpy(ptr, c.inputs[i].data(), c.inputs[i].size() * 4, cudaMemcpyHostToDevice);
    buffers.push_back(ptr);
    in.emplace_back(ptr, c.input_shapes[i], kFloat32, 0, MXContext::GPU());
  }
  for (const auto& s : out_shapes) {
    void* ptr = nullptr;
    cudaMalloc(&ptr, count(s) * 4);
    cudaMemset(ptr, 0xFF, count(s) * 4);  // NaN: unwritten outputs cannot match
    buffers.push_back(ptr);
    out.emplace_back(ptr, s, kFloat32, 0, MXContext::GPU());
  }
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  OpResource res(nullptr, nullptr, gpu_malloc, nullptr, stream, nullptr, nullptr, nullptr, nullptr);
  cudaEvent_t begin, end;
  cudaEventCreate(&begin);
  cudaEventCreate(&end);
  forward(c.attrs, &in, &out, res);  // warm-up (first-launch costs)
  cudaStreamSynchronize(stream);
  cudaEventRecord(begin, stream);
  result.ok = forward(c.attrs, &in, &out, res) == MX_SUCCESS;
  cudaEventRecord(end, stream);
  result.ok = cudaStreamSynchronize(stream) == cudaSuccess && result.ok;
  float ms = 0;
  cudaEventElapsedTime(&ms, begin, end);
  result.milliseconds = ms;
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    result.values.emplace_back(count(out_shapes[i]));
    cudaMemcpy(result.values[i].data(), out[i].data_ptr, count(out_shapes[i]) * 4, cudaMemcpyDeviceToHost);
  }
  for (void* p : buffers) cudaFree(p);
  for (void* p : allocations) cudaFree(p);
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  cudaStreamDestroy(stream);
  return result;
}

/* Mismatch text ("" when within tolerance).  Outputs whose values are ids (class targets,
 * masks, detection class ids: every 6th value of MultiBoxDetection) may differ in up to
 * 0.1% of places; every other value within 1e-4 + 1e-4 |x| (NaN only where both are). */
std::string compare(const char* op, const Outputs& cpu, const Outputs& gpu) {
  if (!cpu.ok || !gpu.ok) return std::string("forward failed on the ") + (cpu.ok ? "GPU" : "CPU");
  const bool detection = std::strcmp(op, "MultiBoxDetection") == 0;
  const bool target = std::strcmp(op, "MultiBoxTarget") == 0;
  for (size_t k = 0; k < cpu.values.size(); ++k) {
    const auto& a = cpu.values[k];
    const auto& b = gpu.values[k];
    size_t id_mismatches = 0, ids = 0, worst = 0;
    double worst_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const bool is_id = (target && k > 0) || (detection && i % 6 == 0);
      ids += is_id;
      if (is_id) {
        id_mismatches += a[i] != b[i];
        continue;
      }
      if (std::isnan(a[i]) || std::isnan(b[i])) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return "output " + std::to_string(k) + ": NaN at " + std::to_string(i);
        continue;
      }
      // Rows whose class differs (a reordered near-tie) carry other boxes: judged by the ids.
      if (detection && a[i - i % 6] != b[i - i % 6]) continue;
      double diff = std::fabs(double(a[i]) - b[i]) - 1e-4 * std::fabs(double(a[i]));
      if (diff > worst_diff) worst_diff = diff, worst = i;
    }
    if (worst_diff > 1e-4) {
      char text[200];
      std::snprintf(text, sizeof text, "output %zu: value %zu differs: cpu %.7g gpu %.7g", k, worst,
                    a[worst], b[worst]);
      return text;
    }
    if (id_mismatches > std::max<size_t>(1, ids / 1000)) {
      return "output " + std::to_string(k) + ": " + std::to_string(id_mismatches) + " of " +
             std::to_string(ids) + " ids differ";
    }
  }
  return "";
}

/* Runs check(case, operator, output shapes) -> passed? for every case; returns the failures. */
template <typename Check>
int count_failures(const std::vector<Case>& cases, Check check) {
  int failures = 0;
  for (const Case& c : cases) {
    CustomOp* op = find_op(c.op);
    failures += !check(c, op, output_shapes(op, c));
  }
  return failures;
}

int self_test(const std::vector<Case>& cases) {
  const int failures = count_failures(cases, [](const Case& c, CustomOp* op, const auto& shapes) {
    Outputs a = run_cpu(forward_of(op, "cpu"), c, shapes);
    Outputs b = run_cpu(forward_of(op, "cpu"), c, shapes);
    std::string same = compare(c.op, a, b);
    // The comparison must notice a corrupted value and a corrupted id beyond the tolerance.
    Outputs bad_value = b;
    bad_value.values[0][bad_value.values[0].size() / 2 + 1] += 0.01f;
    Outputs bad_ids = b;
    auto& ids = bad_ids.values.back();
    for (size_t i = 0; i < ids.size(); i += 97) ids[i] += 1;
    const bool ok = a.ok && same.empty() && !compare(c.op, a, bad_value).empty() &&
                    (std::strcmp(c.op, "MultiBoxPrior") == 0 || !compare(c.op, a, bad_ids).empty());
    std::printf("%-18s %-32s cpu %8.2f ms  self-test %s %s\n", c.op, c.name.c_str(), a.milliseconds,
                ok ? "ok" : "FAILED", same.c_str());
    return ok;
  });
  std::printf("%s: %d of %zu cases failed (CPU only, no GPU used)\n",
              failures ? "SELF-TEST FAILED" : "self-test passed", failures, cases.size());
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool self = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    self |= std::strcmp(argv[i], "--self-test") == 0;
    quick |= std::strcmp(argv[i], "--quick") == 0;
  }
  std::vector<Case> cases = make_cases(quick);
  if (self) return self_test(cases);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no usable CUDA device (%s); run with --self-test for the CPU-only check\n",
                cudaGetErrorString(cudaGetLastError()));
    return 2;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d)\n%-18s %-32s %10s %10s  result\n", prop.name, prop.major,
              prop.minor, "operator", "case", "cpu ms", "gpu ms");
  const int failures = count_failures(cases, [](const Case& c, CustomOp* op, const auto& shapes) {
    Outputs cpu = run_cpu(forward_of(op, "cpu"), c, shapes);
    Outputs gpu = run_gpu(forward_of(op, "gpu"), c, shapes);
    std::string diff = compare(c.op, cpu, gpu);
    std::printf("%-18s %-32s %10.2f %10.3f  %s\n", c.op, c.name.c_str(), cpu.milliseconds,
                gpu.milliseconds, diff.empty() ? "ok" : diff.c_str());
    return diff.empty();
  });
  std::printf("%s: %d of %zu cases outside the tolerance\n", failures ? "FAILED" : "passed",
              failures, cases.size());
  return failures ? 1 : 0;
}
