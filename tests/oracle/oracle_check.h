// Checks shared by the whole-model oracle tests (test_oracle_model.cpp, test_oracle_t5.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

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

}  // namespace moe::test
