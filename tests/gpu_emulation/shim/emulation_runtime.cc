/*
 * The emulated GPU operators' runtime: each *_gpu entry point runs as the CPU forward of an
 * extra operator (MultiBoxTarget_emulated, ...) with an OpResource whose "GPU" allocator hands
 * out host memory filled with a byte pattern (MXSSD_EMU_FILL, hex, default a5) and guarded by
 * canary bytes (a negative, i.e. wrapped, size is an error), outputs poisoned with NaN first,
 * every launch checked, and the failures MXSSD_EMU_FAIL asks for injected (emulation.h).  The
 * first check that fires in a forward is printed to stderr, so a failing test names it.
 */
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "emulation.h"
#include "multibox_params.h"

namespace mxssd_emu {
namespace {

constexpr size_t kGuardBytes = 64;
constexpr unsigned char kGuard = 0xC3;

struct CallState {
  std::vector<std::pair<unsigned char*, size_t>> blocks;  // (start incl. guards, user size)
  hipError_t error = hipSuccess;
  std::string error_text;
  std::map<std::string, int> calls;  // per API, for MXSSD_EMU_FAIL
};

thread_local CallState* current = nullptr;
// A token distinct from HIP-CPU's null stream: code that launches elsewhere is caught.
hipStream_t const kOperatorStream = reinterpret_cast<hipStream_t>(std::uintptr_t(0x5354));

void record(hipError_t error, const std::string& text) {
  if (current && current->error == hipSuccess) {
    current->error = error;
    current->error_text = text;
    std::fprintf(stderr, "emulated GPU check: %s\n", text.c_str());  // which check fired
  }
}

int fill_byte() {
  const char* text = std::getenv("MXSSD_EMU_FILL");
  return text ? int(std::strtol(text, nullptr, 16)) & 0xFF : 0xA5;
}

void* gpu_malloc(void* state, int bytes) {
  auto* call = static_cast<CallState*>(state);
  if (injected_failure("alloc_throw")) throw std::bad_alloc();
  if (injected_failure("alloc")) return nullptr;
  if (bytes < 0) {  // what MXNet would make of it is undefined: a wrapped int byte count
    record(hipErrorInvalidValue, "alloc_gpu(" + std::to_string(bytes) + "): a negative size");
    return nullptr;
  }
  const size_t size = size_t(bytes);
  auto* block = static_cast<unsigned char*>(std::malloc(size + 2 * kGuardBytes));
  std::memset(block, kGuard, kGuardBytes);
  std::memset(block + kGuardBytes, fill_byte(), size);
  std::memset(block + kGuardBytes + size, kGuard, kGuardBytes);
  call->blocks.emplace_back(block, size);
  return block + kGuardBytes;
}

bool guards_intact(const unsigned char* block, size_t size) {
  for (size_t i = 0; i < kGuardBytes; ++i) {
    if (block[i] != kGuard || block[kGuardBytes + size + i] != kGuard) return false;
  }
  return true;
}

void poison(mxnet::ext::MXTensor* tensor) {
  const size_t n = tensor->size();
  if (tensor->dtype == mxnet::ext::kFloat64) {
    std::fill(tensor->data<double>(), tensor->data<double>() + n, NAN);
  } else {
    std::fill(tensor->data<float>(), tensor->data<float>() + n, NAN);
  }
}

}  // namespace

hipStream_t operator_stream() { return kOperatorStream; }

bool check_stream(const char* call, hipStream_t stream) {
  if (stream == kOperatorStream) return true;
  record(hipErrorInvalidResourceHandle,
         std::string(call) + " on a stream other than the operator's");
  return false;
}

bool check_launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes,
                  hipStream_t stream) {
  if (!check_stream(kernel, stream)) return false;
  if (injected_failure("launch")) {
    record(hipErrorLaunchFailure, std::string(kernel) + ": injected launch failure");
    return false;
  }
  const unsigned long long threads = 1ULL * block.x * block.y * block.z;
  const bool ok = grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u &&
                  grid.y <= 65535 && grid.z <= 65535 && threads >= 1 && threads <= 1024 &&
                  block.z <= 64 && shared_bytes <= 48 * 1024;
  if (!ok) {
    record(hipErrorInvalidConfiguration,
           std::string(kernel) + ": launch outside CUDA's limits (grid " + std::to_string(grid.x) +
               "x" + std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
               std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
               std::to_string(block.z) + ")");
  }
  return ok;
}

hipError_t peek_error() { return current ? current->error : hipSuccess; }

bool check_scratch(const void* ptr, size_t bytes, const char* what) {
  if (!current) return true;
  const auto* begin = static_cast<const unsigned char*>(ptr);
  for (const auto& block : current->blocks) {
    const unsigned char* start = block.first + kGuardBytes;
    if (begin >= start && begin + bytes <= start + block.second) return true;
  }
  record(hipErrorInvalidValue, std::string(what) + ": " + std::to_string(bytes) +
                                   " bytes do not fit in the operator's scratch memory");
  return false;
}

hipError_t forbidden(const char* what) {
  record(hipErrorNotSupported, std::string(what) + " in an operator's forward");
  return hipErrorNotSupported;
}

bool injected_failure(const char* api) {
  const char* spec = std::getenv("MXSSD_EMU_FAIL");  // "<api>:<n>"
  const char* colon = spec ? std::strrchr(spec, ':') : nullptr;
  if (!current || !colon || std::string(spec, colon) != api) return false;
  return ++current->calls[api] == std::atoi(colon + 1);
}

int mutant() {
  static const int value = std::getenv("MXSSD_EMU_MUTANT") ? std::atoi(std::getenv("MXSSD_EMU_MUTANT")) : 0;
  return value;
}

}  // namespace mxssd_emu

namespace mxssd {

MXReturnValue run_emulated(Forward gpu_forward, const Attrs& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource&) {
  mxssd_emu::CallState call;
  mxssd_emu::current = &call;
  for (MXTensor& out : *outputs) mxssd_emu::poison(&out);
  OpResource resource(nullptr, nullptr, mxssd_emu::gpu_malloc, &call,
                      reinterpret_cast<void*>(mxssd_emu::kOperatorStream), nullptr, nullptr,
                      nullptr, nullptr);
  MXReturnValue status = gpu_forward(attrs, inputs, outputs, resource);
  (void)hipDeviceSynchronize();
  mxssd_emu::current = nullptr;
  std::string damaged;
  for (auto& block : call.blocks) {
    if (!mxssd_emu::guards_intact(block.first, block.second)) {
      damaged = "scratch block of " + std::to_string(block.second) + " bytes";
    }
    std::free(block.first);
  }
  if (!damaged.empty()) return fail("emulated GPU", "write outside a " + damaged);
  if (status == mxnet::ext::MX_SUCCESS && call.error != hipSuccess) {
    return fail("emulated GPU", call.error_text + " (not reported by the operator)");
  }
  return status;
}

}  // namespace mxssd
