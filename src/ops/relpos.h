// T5's relative position bias (HF T5Attention._relative_position_bucket and
// compute_bias): an (NB, H) table, one learned scalar per (bucket, head), added to
// the attention scores. The bucket of a query at position i and a key at position j
// depends on rel = j - i:
//   bidirectional (encoder): half the buckets for rel > 0; n = |rel|
//   causal (decoder):        n = max(-rel, 0)
//   with nb the buckets per side and max_exact = nb / 2: n < max_exact is its own
//   bucket; larger n share log-spaced buckets up to max_distance (then the last one):
//   max_exact + int(log(n / max_exact) / log(max_distance / max_exact) * (nb - max_exact)),
//   computed in float32 as HF does (torch float32 ops; the test compares every rel).
//   Float64 arithmetic is not a better substitute: where the quotient is an integer in
//   exact arithmetic it can fall an ulp short and truncate to the bucket below (e.g.
//   bidirectional, num_buckets 20, max_distance 160: rel = +-10, +-20, +-80; none for
//   T5's 32 / 128; tests/oracle checks both).
//   Needs num_buckets >= 2 (>= 4 bidirectional) and max_distance > max_exact.
//   bias (H,Tq,Tk), assigned: bias[h,i,j] = table[bucket(j - (q0 + i)), h]
//   (q0: the first query's position; q0 > 0 gives the last Tq rows of a cache's bias)
// Backward: dtable (NB,H) += sum over b, i, j of dscores[b,h,i,j] in bucket(i, j):
// deterministic (each head's sum in a fixed order, in double in both paths).
#pragma once
#include <cstddef>

namespace moe {

int relpos_bucket(int rel, bool bidirectional, int num_buckets, int max_distance);

template <typename S>
void relpos_bias_forward_ref(S* bias, const S* table, int Tq, int Tk, int H, int num_buckets, int max_distance,
                             bool bidirectional, int q0);
template <typename S>
void relpos_bias_backward_ref(S* dtable, const S* dscores, int B, int Tq, int Tk, int H, int num_buckets,
                              int max_distance, bool bidirectional, int q0);

void relpos_bias_forward(float* bias, const float* table, int Tq, int Tk, int H, int num_buckets, int max_distance,
                         bool bidirectional, int q0);
void relpos_bias_backward(float* dtable, const float* dscores, int B, int Tq, int Tk, int H, int num_buckets,
                          int max_distance, bool bidirectional, int q0);

}  // namespace moe
