// Shared test helpers: seeded random data, closeness checks with reasons,
// guarded output buffers (catch out-of-bounds writes), finite-difference checks.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace moe::test {

// Deterministic normal(0, scale) values.
template <typename S>
std::vector<S> randn(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<S> v(n);
  for (auto& x : v) x = S(d(rng));
  return v;
}

std::vector<int32_t> randint(size_t n, int32_t hi, uint64_t seed);  // in [0, hi)

template <typename D, typename S>
std::vector<D> cast(const std::vector<S>& v) {
  return std::vector<D>(v.begin(), v.end());
}

// Element-wise |a - b| <= atol + rtol |b|; reports the worst element and `what`.
::testing::AssertionResult all_close(const float* a, const float* b, size_t n, double atol, double rtol,
                                     const std::string& what);
::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<float>& b, double atol,
                                     double rtol, const std::string& what);
::testing::AssertionResult all_finite(const float* a, size_t n, const std::string& what);

double rms(const std::vector<float>& v);                         // root mean square (0 when empty)
std::vector<float> scaled(const std::vector<float>& v, float s);  // v * s

// A float buffer of n values with guard zones around it filled with a canary bit
// pattern; intact() reports a write outside [0, n).
class Guarded {
 public:
  explicit Guarded(size_t n, float fill = 0.0f);
  float* data() { return buf_.data() + kGuard; }
  const float* data() const { return buf_.data() + kGuard; }
  size_t size() const { return n_; }
  std::vector<float> vec() const { return std::vector<float>(data(), data() + n_); }
  ::testing::AssertionResult intact(const std::string& what) const;

 private:
  static constexpr size_t kGuard = 64;
  size_t n_;
  std::vector<float> buf_;
};

// Central finite differences in double. `loss` recomputes the scalar from the
// current contents of x; `analytic` holds dL/dx from the backward under test.
// Checks up to max_checks elements (spread evenly), each against
//   |num - ana| <= tol * max(1, |num|, |ana|).
::testing::AssertionResult grad_check(std::vector<double>& x, const std::vector<double>& analytic,
                                      const std::function<double()>& loss, const std::string& what,
                                      double h = 1e-5, double tol = 1e-6, size_t max_checks = 400);

// sum_i a[i] * w[i]: the scalar loss whose gradient wrt a is w.
double dot(const std::vector<double>& a, const std::vector<double>& w);

// An empty directory MOE_TEST_BIN/name (removed first if it was there).
std::string fresh_dir(const std::string& name);

}  // namespace moe::test
