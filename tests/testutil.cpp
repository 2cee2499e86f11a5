#include "testutil.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace moe::test {

std::vector<int32_t> randint(size_t n, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

::testing::AssertionResult all_close(const float* a, const float* b, size_t n, double atol, double rtol,
                                     const std::string& what) {
  size_t worst = 0, bad = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < n; i++) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    double lim = atol + rtol * std::fabs(double(b[i]));
    bool nan_mismatch = std::isnan(a[i]) != std::isnan(b[i]);
    if (nan_mismatch || !(d <= lim) ) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      bad++;
      double excess = nan_mismatch || std::isnan(d) ? 1e300 : d - lim;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(9);
  os << what << ": " << bad << " of " << n << " elements differ; worst at " << worst << ": " << a[worst]
     << " vs " << b[worst] << " (atol " << atol << ", rtol " << rtol << ")";
  return ::testing::AssertionFailure() << os.str();
}

::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<float>& b, double atol,
                                     double rtol, const std::string& what) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": sizes " << a.size() << " vs " << b.size();
  return all_close(a.data(), b.data(), a.size(), atol, rtol, what);
}

::testing::AssertionResult all_finite(const float* a, size_t n, const std::string& what) {
  for (size_t i = 0; i < n; i++)
    if (!std::isfinite(a[i])) return ::testing::AssertionFailure() << what << ": non-finite value at " << i;
  return ::testing::AssertionSuccess();
}

static constexpr uint32_t kCanary = 0x7fc0dead;  // a NaN payload no kernel produces

static float canary() {
  float f;
  std::memcpy(&f, &kCanary, 4);
  return f;
}

Guarded::Guarded(size_t n, float fill) : n_(n), buf_(n + 2 * kGuard, canary()) {
  std::fill(buf_.begin() + kGuard, buf_.begin() + kGuard + n, fill);
}

::testing::AssertionResult Guarded::intact(const std::string& what) const {
  for (size_t i = 0; i < buf_.size(); i++) {
    if (i >= kGuard && i < kGuard + n_) continue;
    uint32_t u;
    std::memcpy(&u, &buf_[i], 4);
    if (u != kCanary)
      return ::testing::AssertionFailure() << what << ": write outside the buffer at offset "
                                           << (long(i) - long(kGuard));
  }
  return ::testing::AssertionSuccess();
}

double dot(const std::vector<double>& a, const std::vector<double>& w) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * w[i];
  return s;
}

::testing::AssertionResult grad_check(std::vector<double>& x, const std::vector<double>& analytic,
                                      const std::function<double()>& loss, const std::string& what, double h,
                                      double tol, size_t max_checks) {
  if (analytic.size() != x.size())
    return ::testing::AssertionFailure() << what << ": gradient has " << analytic.size() << " values for "
                                         << x.size() << " inputs";
  size_t n = x.size();
  size_t step = std::max<size_t>(1, n / max_checks);
  double worst = 0;
  size_t worst_i = 0;
  double worst_num = 0;
  for (size_t i = 0; i < n; i += step) {
    double x0 = x[i];
    x[i] = x0 + h;
    double lp = loss();
    x[i] = x0 - h;
    double lm = loss();
    x[i] = x0;
    double num = (lp - lm) / (2 * h);
    double err = std::fabs(num - analytic[i]) / std::max({1.0, std::fabs(num), std::fabs(analytic[i])});
    if (!(err <= worst) || std::isnan(err)) worst = std::isnan(err) ? 1e300 : err, worst_i = i, worst_num = num;
  }
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": gradient error " << worst << " > " << tol << " at " << worst_i
                                       << " (numeric " << worst_num << ", analytic " << analytic[worst_i] << ")";
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

std::vector<float> scaled(const std::vector<float>& v, float s) {
  std::vector<float> r(v);
  for (float& x : r) x *= s;
  return r;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(MOE_TEST_BIN) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace moe::test
