// Checks shared by the whole-model oracle tests (test_oracle_model.cpp, test_oracle_t5.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "tensor/flat.h"

namespace moe::test {

// One tensor's weights after `steps` AdamW steps at rate lr, ours against the oracle's.
// Each entry moved by <= steps * lr. Adam divides each gradient by its own running rms,
// so an entry whose gradient is near zero (at fp32 noise level) takes a step of arbitrary
// relative error: at most 0.1% of the entries may differ beyond 1e-5, and none by more
// than a tenth of the largest possible move. Returns the largest difference.
inline double expect_adam_final_close(const std::vector<float>& got, const std::vector<float>& want, int steps,
                                      float lr, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  size_t loose = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); i++) {
    const double d = std::fabs(double(got[i]) - want[i]);
    worst = std::max(worst, d);
    loose += d > 1e-5 + 1e-5 * std::fabs(want[i]);
  }
  EXPECT_LE(loose, got.size() / 1000) << what << ": " << loose << " entries beyond 1e-5";
  EXPECT_LE(worst, 0.1 * steps * lr) << what;
  return worst;
}

// A per-expert HF tensor name ("...experts.3.w1.weight", Mixtral's; "...experts.expert_3.wi.weight",
// switch_transformers') as expert 3's slice of our stacked [E, ...] tensor ("...experts.*.w1.weight",
// "...experts.expert_*.wi.weight"); nullopt when the name is not an expert's.
inline std::optional<std::vector<float>> expert_slice(const ParamLayout& L, const FlatBuffer& buf,
                                                      const std::string& name) {
  static const std::regex expert(R"(\.experts\.(expert_)?(\d+)\.)");
  std::smatch mt;
  if (L.find(name) || !std::regex_search(name, mt, expert)) return std::nullopt;
  const ParamSpec& s = L.at(mt.prefix().str() + ".experts." + mt[1].str() + "*." + mt.suffix().str());
  const int64_t e = std::stoll(mt[2].str()), per = s.shape.numel() / s.shape[0];
  EXPECT_LT(e, s.shape[0]) << name;
  const float* p = buf.data() + s.offset + e * per;
  return std::vector<float>(p, p + per);  // experts are [out, in] as ours: never transposed
}

// How many tensors the HF checkpoint holds (an [E, ...] expert tensor is E of them).
inline size_t hf_tensor_count(const ParamLayout& L) {
  size_t n = 0;
  for (const ParamSpec& s : L.specs()) n += s.name.find('*') == std::string::npos ? 1 : size_t(s.shape[0]);
  return n;
}

}  // namespace moe::test
