#include "tensor/sumsq.h"

#include <vector>

namespace moe {

// Fixed-size chunks summed in double, then the chunk sums added in order: the
// result does not depend on the thread count or schedule.
double grad_sumsq(const float* g, size_t n) {
  constexpr size_t kChunk = 1 << 14;
  size_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> sums(nchunks);
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < nchunks; c++) {
    size_t end = (c + 1) * kChunk < n ? (c + 1) * kChunk : n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = c * kChunk; i < end; i++) s += double(g[i]) * double(g[i]);
    sums[c] = s;
  }
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

}  // namespace moe
