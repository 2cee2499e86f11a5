#include "ops/relpos.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe {

// HF's float32 arithmetic, operation for operation: torch takes n as float32, divides
// by max_exact (an int, promoted to float32), takes the float32 log, divides by
// math.log(max_distance / max_exact) (a Python double, rounded to float32 when it
// meets the float32 tensor), multiplies by num_buckets - max_exact (float32) and
// truncates (.to(torch.long)). The same steps in double can land on the other side
// of an integer where the product is one in exact arithmetic (bidirectional 20 / 160
// at rel = 10: log(2) / log(32) * 5 = 1, which float32 hits and double misses by an ulp,
// truncating to 0), so double is not used here although it is "more accurate".
int relpos_bucket(int rel, bool bidirectional, int num_buckets, int max_distance) {
  int nb = num_buckets, base = 0, n;
  if (bidirectional) {
    nb /= 2;
    if (rel > 0) base = nb;
    n = rel < 0 ? -rel : rel;
  } else {
    n = rel < 0 ? -rel : 0;
  }
  const int max_exact = nb / 2;
  if (n < max_exact) return base + n;
  const float log_ratio = float(std::log(double(max_distance) / max_exact));
  const float r = std::log(float(n) / float(max_exact)) / log_ratio * float(nb - max_exact);
  const int large = max_exact + int(r);  // r >= 0: int() truncates as .to(torch.long) does
  return base + std::min(large, nb - 1);
}

namespace {

// bucket[r] for r = j - i + (Tq - 1), i.e. rel = j - (q0 + i) = r - (Tq - 1) - q0: every
// (i, j) of a Tq x Tk block lies on one of its Tq + Tk - 1 diagonals.
std::vector<int> diagonal_buckets(int Tq, int Tk, int q0, bool bidirectional, int num_buckets, int max_distance) {
  std::vector<int> bk(size_t(Tq) + Tk - 1);
  for (size_t r = 0; r < bk.size(); r++)
    bk[r] = relpos_bucket(int(r) - (Tq - 1) - q0, bidirectional, num_buckets, max_distance);
  return bk;
}

}  // namespace

// ------------------------------------------------------------------ reference

template <typename S>
void relpos_bias_forward_ref(S* bias, const S* table, int Tq, int Tk, int H, int num_buckets, int max_distance,
                             bool bidirectional, int q0) {
  for (int h = 0; h < H; h++)
    for (int i = 0; i < Tq; i++)
      for (int j = 0; j < Tk; j++) {
        int b = relpos_bucket(j - (q0 + i), bidirectional, num_buckets, max_distance);
        bias[(size_t(h) * Tq + i) * Tk + j] = table[size_t(b) * H + h];
      }
}

template <typename S>
void relpos_bias_backward_ref(S* dtable, const S* dscores, int B, int Tq, int Tk, int H, int num_buckets,
                              int max_distance, bool bidirectional, int q0) {
  std::vector<double> acc(size_t(num_buckets) * H, 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++) {
          int k = relpos_bucket(j - (q0 + i), bidirectional, num_buckets, max_distance);
          acc[size_t(k) * H + h] += double(dscores[((size_t(b) * H + h) * Tq + i) * Tk + j]);
        }
  for (size_t x = 0; x < acc.size(); x++) dtable[x] = S(double(dtable[x]) + acc[x]);
}

template void relpos_bias_forward_ref<float>(float*, const float*, int, int, int, int, int, bool, int);
template void relpos_bias_forward_ref<double>(double*, const double*, int, int, int, int, int, bool, int);
template void relpos_bias_backward_ref<float>(float*, const float*, int, int, int, int, int, int, bool, int);
template void relpos_bias_backward_ref<double>(double*, const double*, int, int, int, int, int, int, bool, int);

// ------------------------------------------------------------------ fast path

// The bias depends on (h, j - i) only: one row of Tq + Tk - 1 values per head, and
// each output row is a contiguous Tk-long window of it (a copy, not a gather).
void relpos_bias_forward(float* bias, const float* table, int Tq, int Tk, int H, int num_buckets, int max_distance,
                         bool bidirectional, int q0) {
  if (Tq <= 0 || Tk <= 0) return;
  const std::vector<int> bk = diagonal_buckets(Tq, Tk, q0, bidirectional, num_buckets, max_distance);
  const size_t R = bk.size();
  std::vector<float> diag(size_t(H) * R);
  for (int h = 0; h < H; h++)
    for (size_t r = 0; r < R; r++) diag[h * R + r] = table[size_t(bk[r]) * H + h];
#pragma omp parallel for collapse(2) schedule(static)
  for (int h = 0; h < H; h++)
    for (int i = 0; i < Tq; i++) {
      const float* src = diag.data() + h * R + (Tq - 1 - i);
      float* dst = bias + (size_t(h) * Tq + i) * Tk;
#pragma omp simd
      for (int j = 0; j < Tk; j++) dst[j] = src[j];
    }
}

// Backward: a thread owns whole heads, so each dtable column is one thread's sum in
// a fixed order (b, i, j, then the diagonals in order): the same bits for any thread
// count. Per head, the B x Tq x Tk gradients are first summed along their diagonals
// (row i of dscores adds into diagonals Tq-1-i .. Tq-1-i+Tk-1: a contiguous,
// vectorised add), then the Tq + Tk - 1 diagonal sums are added into their buckets.
// The sums are in double: a bucket collects up to B Tq Tk terms (the far buckets
// most), and the scatter is memory-bound either way.
void relpos_bias_backward(float* dtable, const float* dscores, int B, int Tq, int Tk, int H, int num_buckets,
                          int max_distance, bool bidirectional, int q0) {
  if (Tq <= 0 || Tk <= 0) return;
  const std::vector<int> bk = diagonal_buckets(Tq, Tk, q0, bidirectional, num_buckets, max_distance);
  const size_t R = bk.size();
#pragma omp parallel
  {
    std::vector<double> diag(R), acc(num_buckets);
#pragma omp for schedule(static)
    for (int h = 0; h < H; h++) {
      std::fill(diag.begin(), diag.end(), 0.0);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int b = 0; b < B; b++)
        for (int i = 0; i < Tq; i++) {
          const float* row = dscores + ((size_t(b) * H + h) * Tq + i) * Tk;
          double* d = diag.data() + (Tq - 1 - i);
#pragma omp simd
          for (int j = 0; j < Tk; j++) d[j] += double(row[j]);
        }
      for (size_t r = 0; r < R; r++) acc[bk[r]] += diag[r];
      for (int k = 0; k < num_buckets; k++) {
        float& t = dtable[size_t(k) * H + h];
        t = float(double(t) + acc[k]);
      }
    }
  }
}

}  // namespace moe
