#include "model/hf_json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace moe::hf {

void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

double num(float f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", double(f));
  return std::strtod(buf, nullptr);
}

std::string shown(const nlohmann::json& v) {
  // dump() recurses once per nesting level: a deeply nested value in a hostile
  // config.json would overflow the stack, so nested containers show as [...] / {...}.
  if (v.is_structured())
    for (const auto& x : v)
      if (x.is_structured()) return v.is_array() ? "[...]" : "{...}";
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

int opt_int(const nlohmann::json& j, const char* key, int def, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  // An integer too large for a size is out of range, not "not an integer" (issue 21, item 15).
  const bool huge = (it->is_number_unsigned() && it->get<uint64_t>() > (uint64_t(1) << 30)) ||
                    (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() > (int64_t(1) << 30));
  if (huge) fail(path, std::string("field '") + key + "' is " + shown(*it) + ", more than 2^30 (1073741824), the largest integer moe reads");
  if (!it->is_number_integer() || it->get<int64_t>() < 0)
    fail(path, std::string("field '") + key + "' must be a non-negative integer, got " + shown(*it));
  return int(it->get<int64_t>());
}

int req_int(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) fail(path, std::string("missing field '") + key + "'");
  int v = opt_int(j, key, 0, path);
  if (v <= 0) fail(path, std::string("field '") + key + "' must be a positive integer, got " + shown(j[key]));
  return v;
}

float opt_float(const nlohmann::json& j, const char* key, float def, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail(path, std::string("field '") + key + "' must be a number, got " + shown(*it));
  const double v = it->get<double>();
  if (!std::isfinite(v) || std::fabs(v) > 3.0e38)
    fail(path, std::string("field '") + key + "' must be a finite float32 number, got " + shown(*it));
  return float(v);
}

bool opt_bool(const nlohmann::json& j, const char* key, bool def, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(path, std::string("field '") + key + "' must be true or false, got " + shown(*it));
  return it->get<bool>();
}

std::optional<std::string> opt_string(const nlohmann::json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail(path, std::string("field '") + key + "' must be a string, got " + shown(*it));
  return it->get<std::string>();
}

}  // namespace moe::hf
