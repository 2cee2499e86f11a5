// Residual add:  out = a + b  (n values; out may alias a or b).
// Backward: the residual stream accumulates:  da += dout,  db += dout.
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void residual_forward_ref(S* out, const S* a, const S* b, size_t n);
template <typename S>
void residual_backward_ref(S* da, S* db, const S* dout, size_t n);

void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_backward(float* da, float* db, const float* dout, size_t n);

}  // namespace moe
