// Causal multi-head self-attention with grouped-query heads (GQA; Hkv == H is MHA,
// Hkv == 1 is MQA). Query head h reads key/value head h / (H / Hkv).
//   q (B,T,H,D), k (B,T,Hkv,D), v (B,T,Hkv,D)  ->  out (B,T,H,D)
//   att (B,H,T,T): saved softmax probabilities, row t holds s <= t, zeros above.
// Scores are scaled by 1/sqrt(D); the softmax subtracts the row max (stable).
// Backward: dq, dk, dv assigned.
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void attention_forward_ref(S* out, S* att, const S* q, const S* k, const S* v, int B, int T, int H, int Hkv, int D);
template <typename S>
void attention_backward_ref(S* dq, S* dk, S* dv, const S* dout, const S* q, const S* k, const S* v, const S* att,
                            int B, int T, int H, int Hkv, int D);

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int H,
                       int Hkv, int D);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* att, int B, int T, int H, int Hkv, int D);

// Inference with a key/value cache (forward only: nothing is trained through it).
// n new queries q (n,H,D) at positions pos0 .. pos0+n-1 attend causally to the
// cached keys/values k, v (pos0+n, Hkv, D) of the same sequence: out (n,H,D) is
// exactly the last n rows of attention_forward over the whole sequence (a test
// checks this against the verified training op).
void attention_forward_cached(float* out, const float* q, const float* k, const float* v, int n, int pos0, int H,
                              int Hkv, int D);

}  // namespace moe
