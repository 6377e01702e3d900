/*
 * Attribute parsing and the helpers shared by the three operators.
 */
#include "multibox_params.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

namespace mxssd {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_float(const std::string& text, float* out) {
  std::string t = text;
  size_t a = t.find_first_not_of(" \t");
  size_t b = t.find_last_not_of(" \t");
  if (a == std::string::npos) return false;
  t = t.substr(a, b - a + 1);
  char* end = nullptr;
  *out = strtof(t.c_str(), &end);
  return end && *end == '\0' && std::isfinite(*out);  // nan/inf would defeat every range rule
}

/* Accepts "(0.1, 0.2)", "[0.1,0.2]", "0.1,0.2", "(0.1,)" and a bare "0.1". */
bool parse_float_list(const std::string& text, std::vector<float>* out) {
  std::string body;
  for (char c : text) {
    if (c != '(' && c != ')' && c != '[' && c != ']') body += c;
  }
  out->clear();
  std::stringstream ss(body);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;  // "(0.1,)"
    float value;
    if (!parse_float(item, &value)) return false;
    out->push_back(value);
  }
  return !out->empty();
}

bool parse_bool(const std::string& text, bool* out) {
  std::string t = lower(text);
  if (t == "1" || t == "true") { *out = true; return true; }
  if (t == "0" || t == "false") { *out = false; return true; }
  return false;
}

bool parse_int(const std::string& text, int* out) {
  float value;
  if (!parse_float(text, &value) || value != static_cast<float>(static_cast<int>(value))) {
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

/* A table of named setters: every attribute MXNet passes must be one of them. */
using Setter = std::function<bool(const std::string& value, std::string* why)>;

bool apply_attrs(const char* op, const Attrs& attrs,
                 const std::vector<std::pair<const char*, Setter>>& setters) {
  for (const auto& kv : attrs) {
    if (kv.first.rfind("__", 0) == 0) continue;  // MXNet's own node attributes
    const Setter* setter = nullptr;
    for (const auto& named : setters) {
      if (kv.first == named.first) setter = &named.second;
    }
    if (!setter) {
      std::string known;
      for (const auto& named : setters) known += std::string(known.empty() ? "" : ", ") + named.first;
      fail(op, "unknown argument '" + kv.first + "' (known: " + known + ")");
      return false;
    }
    std::string why;
    if (!(*setter)(kv.second, &why)) {
      fail(op, "argument '" + kv.first + "' " + why + ", got '" + kv.second + "'");
      return false;
    }
  }
  return true;
}

Setter float_setter(float* dst, std::function<bool(float)> valid, const char* rule) {
  return [=](const std::string& v, std::string* why) {
    *why = std::string("must be ") + rule;
    return parse_float(v, dst) && valid(*dst);
  };
}

Setter int_setter(int* dst, std::function<bool(int)> valid, const char* rule) {
  return [=](const std::string& v, std::string* why) {
    *why = std::string("must be ") + rule;
    return parse_int(v, dst) && valid(*dst);
  };
}

Setter bool_setter(bool* dst) {
  return [=](const std::string& v, std::string* why) {
    *why = "must be a boolean";
    return parse_bool(v, dst);
  };
}

Setter list_setter(std::vector<float>* dst, size_t exact_size,
                   std::function<bool(float)> valid, const char* rule) {
  return [=](const std::string& v, std::string* why) {
    *why = std::string("must be ") + rule;
    return parse_float_list(v, dst) && (exact_size == 0 || dst->size() == exact_size) &&
           std::all_of(dst->begin(), dst->end(), valid);
  };
}

Setter variances_setter(Variances* dst) {
  return [=](const std::string& v, std::string* why) {
    std::vector<float> values;
    *why = "must be 4 positive floats (x, y, w, h)";
    if (!parse_float_list(v, &values) || values.size() != 4) return false;
    for (float x : values) if (!(x > 0.f)) return false;
    *dst = Variances{values[0], values[1], values[2], values[3]};
    return true;
  };
}

bool any(float) { return true; }
bool positive(float x) { return x > 0.f; }
bool unit_interval(float x) { return x >= 0.f && x <= 1.f; }

/* lib_api keeps every error message ever reported in a private list and MXNet prints
 * the whole list with each new error, so without clearing it a second failure would repeat
 * the first one.  Explicit instantiation may name a private member; this reaches the list. */
using MessageList = std::vector<std::stringstream*> mxnet::ext::MXerrorMsgs::*;
struct MessagesTag {
  friend MessageList message_list(MessagesTag);
};
template <MessageList member>
struct MessagesAccess {
  friend MessageList message_list(MessagesTag) { return member; }
};
template struct MessagesAccess<&mxnet::ext::MXerrorMsgs::messages>;

void clear_old_error_messages() {
  std::vector<std::stringstream*>& messages =
      mxnet::ext::MXerrorMsgs::get()->*message_list(MessagesTag());
  for (std::stringstream* message : messages) delete message;
  messages.clear();
}

}  // namespace

MXReturnValue fail(const char* op, const std::string& message) {
  clear_old_error_messages();
  MX_ERROR_MSG << op << ": " << message;
  return mxnet::ext::MX_FAIL;
}

std::string shape_str(const std::vector<unsigned int>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + ")";
}

bool parse_prior(const Attrs& attrs, PriorParams* p) {
  std::vector<float> steps{-1.f, -1.f}, offsets{0.5f, 0.5f};
  bool ok = apply_attrs(kPriorOp, attrs, {
      {"sizes", list_setter(&p->sizes, 0, positive, "a non-empty tuple of positive floats")},
      {"ratios", list_setter(&p->ratios, 0, positive, "a non-empty tuple of positive floats")},
      {"clip", bool_setter(&p->clip)},
      {"steps", list_setter(&steps, 2, any, "a pair of floats (step_y, step_x)")},
      {"offsets", list_setter(&offsets, 2, unit_interval, "a pair of floats in [0, 1] (y, x)")},
  });
  if (!ok) return false;
  if ((steps[0] > 0.f) != (steps[1] > 0.f)) {
    fail(kPriorOp, "argument 'steps' must give both step_y and step_x or neither");
    return false;
  }
  if (p->anchors_per_cell() > kMaxPriorShapes) {
    fail(kPriorOp, "len(sizes) + len(ratios) - 1 must be at most " +
                              std::to_string(kMaxPriorShapes));
    return false;
  }
  p->steps[0] = steps[0]; p->steps[1] = steps[1];
  p->offsets[0] = offsets[0]; p->offsets[1] = offsets[1];
  return true;
}

bool parse_target(const Attrs& attrs, TargetParams* p) {
  return apply_attrs(kTargetOp, attrs, {
      {"overlap_threshold", float_setter(&p->overlap_threshold, any, "a float")},
      {"ignore_label", float_setter(&p->ignore_label, any, "a float")},
      {"negative_mining_ratio", float_setter(&p->negative_mining_ratio, any, "a float")},
      {"negative_mining_thresh", float_setter(&p->negative_mining_thresh, positive,
                                              "a positive float")},
      {"minimum_negative_samples", int_setter(&p->minimum_negative_samples,
                                              [](int v) { return v >= 0; },
                                              "a non-negative integer")},
      {"variances", variances_setter(&p->variances)},
  });
}

bool parse_detection(const Attrs& attrs, DetectionParams* p) {
  return apply_attrs(kDetectionOp, attrs, {
      {"clip", bool_setter(&p->clip)},
      {"threshold", float_setter(&p->threshold, any, "a float")},
      {"background_id", int_setter(&p->background_id, [](int v) { return v >= 0; },
                                   "a non-negative integer")},
      {"nms_threshold", float_setter(&p->nms_threshold,
                                     [](float v) { return v > 0.f && v <= 1.f; },
                                     "in (0, 1]")},
      {"force_suppress", bool_setter(&p->force_suppress)},
      {"variances", variances_setter(&p->variances)},
      {"nms_topk", int_setter(&p->nms_topk, [](int v) { return v == -1 || v > 0; },
                              "-1 (no limit) or a positive integer")},
  });
}

MXReturnValue check_extents(const char* op, const char* what,
                            const std::vector<unsigned int>& shape) {
  constexpr long long kMaxElements = 1LL << 31;  // kernels index elements with int
  long long elements = 1;
  for (unsigned int dim : shape) {
    if (dim == 0 || dim >= kMaxElements) {
      return fail(op, std::string(what) + " has an empty or unknown dimension: shape " +
                          shape_str(shape));
    }
    elements *= dim;
    if (elements >= kMaxElements) {
      return fail(op, std::string(what) + " is too large (2^31 elements or more): shape " +
                          shape_str(shape));
    }
  }
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue check_all_extents(const char* op, const std::vector<const char*>& names,
                                const std::vector<std::vector<unsigned int>>& shapes) {
  for (size_t i = 0; i < names.size() && i < shapes.size(); ++i) {
    std::string what = std::string("input '") + names[i] + "'";
    if (check_extents(op, what.c_str(), shapes[i]) != mxnet::ext::MX_SUCCESS) {
      return mxnet::ext::MX_FAIL;
    }
  }
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue infer_float_type(const char* op, const std::vector<int>& in_types,
                               std::vector<int>* out_types, int num_outputs) {
  int dtype = in_types.at(0);
  if (dtype != mxnet::ext::kFloat32 && dtype != mxnet::ext::kFloat64) {
    return fail(op, "inputs must be float32 or float64, got dtype code " + std::to_string(dtype));
  }
  for (size_t i = 1; i < in_types.size(); ++i) {
    if (in_types[i] != dtype) {
      return fail(op, "all inputs must have the same dtype (input 0 has code " +
                          std::to_string(dtype) + ", input " + std::to_string(i) + " has " +
                          std::to_string(in_types[i]) + ")");
    }
  }
  out_types->assign(num_outputs, dtype);
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue zero_gradients_cpu(const Attrs&, std::vector<MXTensor>*,
                                 std::vector<MXTensor>* outputs, const OpResource&) {
  for (MXTensor& grad : *outputs) {
    size_t bytes = grad.size() * (grad.dtype == mxnet::ext::kFloat64 ? 8 : 4);
    std::memset(grad.data_ptr, 0, bytes);
  }
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace mxssd

mxnet::ext::MXReturnValue initialize(int version) {
  if (version >= 10700) return mxnet::ext::MX_SUCCESS;
  MX_ERROR_MSG << "mxnet-ssd operators need MXNet >= 1.7 (found version code " << version << ")";
  return mxnet::ext::MX_FAIL;
}
