// Multi-head attention in its general form, as T5 uses it: self- or cross-attention
// (Tq queries, Tk keys), causal or not, any score scale, and an additive bias per
// head (T5's relative position bias) shared by the batch:
//   q (B,Tq,H,D), k (B,Tk,H,D), v (B,Tk,H,D)  ->  out (B,Tq,H,D)
//   scores[b,h,i,j] = scale * q[b,i,h]·k[b,j,h] + bias[h,i,j]      (bias (H,Tq,Tk), or null)
//   causal (needs Tq == Tk): key j > i is masked out
//   att (B,H,Tq,Tk): saved softmax probabilities (masked entries 0)
// T5 uses scale = 1 (no 1/sqrt(D): its init folds it into q). The softmax subtracts
// the row max (stable).
// Backward: dq, dk, dv assigned; dscores (B,H,Tq,Tk), when not null, is assigned the
// gradient of the scores (so d bias[h] = sum_b dscores[b,h]: ops/relpos.h sums it);
// masked entries are 0. The fast path's results do not depend on the thread count
// (threads own (b, h) pairs; no GQA, so no head shares dk, dv).
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void attention_general_forward_ref(S* out, S* att, const S* q, const S* k, const S* v, const S* bias, int B, int Tq,
                                   int Tk, int H, int D, double scale, bool causal);
template <typename S>
void attention_general_backward_ref(S* dq, S* dk, S* dv, S* dscores, const S* dout, const S* q, const S* k,
                                    const S* v, const S* att, int B, int Tq, int Tk, int H, int D, double scale,
                                    bool causal);

void attention_general_forward(float* out, float* att, const float* q, const float* k, const float* v,
                               const float* bias, int B, int Tq, int Tk, int H, int D, float scale, bool causal);
void attention_general_backward(float* dq, float* dk, float* dv, float* dscores, const float* dout, const float* q,
                                const float* k, const float* v, const float* att, int B, int Tq, int Tk, int H, int D,
                                float scale, bool causal);

// Inference with a key/value cache (forward only): one sequence, n queries q (n,H,D) at
// positions pos0 .. pos0+n-1 against Tk cached keys/values k, v (Tk,H,D); bias
// (H,n,Tk) or null; causal: query pos0+i sees keys 0 .. pos0+i (then Tk >= pos0+n).
// out (n,H,D) equals the matching rows of attention_general_forward (tested).
void attention_general_forward_cached(float* out, const float* q, const float* k, const float* v, const float* bias,
                                      int n, int pos0, int Tk, int H, int D, float scale, bool causal);

}  // namespace moe
