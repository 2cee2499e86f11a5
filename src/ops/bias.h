// Bias add over rows:  out (N,C) += b (C);   backward: db (C) += sum_n dout (N,C).
// (The activation gradient of a bias add is dout itself: nothing to compute.)
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void bias_forward_ref(S* out, const S* b, int N, int C);
template <typename S>
void bias_backward_ref(S* db, const S* dout, int N, int C);

void bias_forward(float* out, const float* b, int N, int C);
void bias_backward(float* db, const float* dout, int N, int C);

}  // namespace moe
