#include "dist/reduce.h"

#include <algorithm>
#include <cstring>

#include "tensor/sumsq.h"

namespace moe {

Shards Shards::even(size_t n, int P) {
  Shards s;
  size_t off = 0;
  for (int r = 0; r < P; r++) {
    const size_t len = n / size_t(P) + (size_t(r) < n % size_t(P) ? 1 : 0);
    s.begin.push_back(off);
    s.end.push_back(off + len);
    off += len;
  }
  return s;
}

namespace {
// The part of rank r's shard inside bucket [b0, b1), as [lo, hi) (empty when lo >= hi).
std::pair<size_t, size_t> part(const Shards& s, int r, size_t b0, size_t b1) {
  const size_t lo = std::max(b0, s.begin[size_t(r)]), hi = std::min(b1, s.end[size_t(r)]);
  return {lo, std::max(lo, hi)};
}
}  // namespace

void reduce_scatter_sum(float* buf, size_t n, const Shards& s, Comm& c, size_t bucket) {
  const int P = c.size(), me = c.rank();
  if (P == 1) return;
  std::vector<size_t> sc(static_cast<size_t>(P)), rc(static_cast<size_t>(P));
  std::vector<float> recv;
  for (size_t b0 = 0; b0 < n; b0 += bucket) {
    const size_t b1 = std::min(n, b0 + bucket);
    // To rank r: my values of r's part of this bucket (contiguous in buf, so sent in place).
    const auto [mlo, mhi] = part(s, me, b0, b1);
    size_t first = b1;
    for (int r = 0; r < P; r++) {
      const auto [lo, hi] = part(s, r, b0, b1);
      sc[size_t(r)] = (hi - lo) * sizeof(float);
      rc[size_t(r)] = (mhi - mlo) * sizeof(float);
      if (hi > lo) first = std::min(first, lo);
    }
    recv.resize(size_t(P) * (mhi - mlo));
    // The parts of consecutive ranks are consecutive in the buffer: the send region starts
    // at the first non-empty part.
    c.alltoallv(buf + (first == b1 ? b0 : first), sc, recv.data(), rc);
    const size_t m = mhi - mlo;
    float* dst = buf + mlo;
    for (size_t i = 0; i < m; i++) {
      float acc = recv[i];
      for (int r = 1; r < P; r++) acc += recv[size_t(r) * m + i];
      dst[i] = acc;
    }
  }
}

void allgather_shards(float* buf, size_t n, const Shards& s, Comm& c, size_t bucket) {
  const int P = c.size(), me = c.rank();
  if (P == 1) return;
  std::vector<size_t> counts(static_cast<size_t>(P));
  std::vector<float> tmp;
  for (size_t b0 = 0; b0 < n; b0 += bucket) {
    const size_t b1 = std::min(n, b0 + bucket);
    size_t first = b1, last = b0;
    for (int r = 0; r < P; r++) {
      const auto [lo, hi] = part(s, r, b0, b1);
      counts[size_t(r)] = (hi - lo) * sizeof(float);
      if (hi > lo) first = std::min(first, lo), last = std::max(last, hi);
    }
    if (first >= last) continue;
    const auto [mlo, mhi] = part(s, me, b0, b1);
    tmp.resize(last - first);
    c.allgatherv(buf + mlo, tmp.data(), counts);
    std::memcpy(buf + first, tmp.data(), (last - first) * sizeof(float));
    (void)mhi;
  }
}

double shards_sumsq(const float* buf, const Shards& s, Comm& c, bool replicated) {
  const int P = c.size();
  std::vector<double> parts(static_cast<size_t>(P), 0.0);
  if (replicated) {
    for (int r = 0; r < P; r++) parts[size_t(r)] = grad_sumsq(buf + s.begin[size_t(r)], s.size(r));
  } else {
    double mine = grad_sumsq(buf + s.begin[size_t(c.rank())], s.size(c.rank()));
    c.allgather(&mine, sizeof mine, parts.data());
  }
  double total = 0;
  for (double p : parts) total += p;
  return total;
}

}  // namespace moe
