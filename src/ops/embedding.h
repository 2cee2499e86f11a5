// Token embedding plus optional learned positions.
//   out (B,T,C) = wte[tokens[b,t]] (V,C) + wpe[t] (maxT,C)     wpe == nullptr: no positions
// Token ids must lie in [0, V): callers validate data at the edge (loaders).
#pragma once
#include <cstddef>
#include <cstdint>

namespace moe {

template <typename S>
void embedding_forward_ref(S* out, const int32_t* tokens, const S* wte, const S* wpe, int B, int T, int C);
// dwte (V,C) += scatter of dout rows; dwpe (maxT,C) += sum over b (skipped when null).
template <typename S>
void embedding_backward_ref(S* dwte, S* dwpe, const S* dout, const int32_t* tokens, int B, int T, int C);

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C);

}  // namespace moe
