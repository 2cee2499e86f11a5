// Deterministic column sums across threads. Kernels that accumulate parameter
// gradients over rows (norm weights, biases) give each thread its own zeroed
// row of partial sums, then add the rows in thread order: the result depends on
// the thread count only, never on scheduling, so a seeded run is repeatable.
#pragma once
#include <cstddef>
#include <omp.h>

#include <vector>

namespace moe {

class Partials {
 public:
  // `rows` partial vectors of C floats per thread.
  Partials(int C, int rows = 1) : C_(C), rows_(rows), nt_(omp_get_max_threads()), buf_(size_t(nt_) * rows * C) {}
  int threads() const { return nt_; }
  // This thread's partial vector `row` (call inside the parallel region).
  float* mine(int row = 0) { return buf_.data() + (size_t(omp_get_thread_num()) * rows_ + row) * C_; }
  // dst[c] += sum over threads of partial `row`, in thread order.
  void add_to(float* dst, int row = 0) const {
    if (!dst) return;
    for (int t = 0; t < nt_; t++) {
      const float* p = buf_.data() + (size_t(t) * rows_ + row) * C_;
      for (int c = 0; c < C_; c++) dst[c] += p[c];
    }
  }

 private:
  int C_, rows_, nt_;
  std::vector<float> buf_;
};

}  // namespace moe
