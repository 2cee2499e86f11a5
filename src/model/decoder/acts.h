// The activations one forward keeps for its backward, and the backward's scratch,
// carved from one arena sized for (B, T). Private to model_*.cpp.
#pragma once
#include <vector>

#include "model/decoder/model.h"

namespace moe {

struct LayerActs {
  float *ln1, *ln1_mean, *ln1_rstd;  // (N,C), (N), (N)
  float* qkv;                        // (N,3C), fused qkv only
  float *q, *k, *v;                  // (N,H*D), (N,Hkv*D), (N,Hkv*D); q, k after RoPE
  float* att;                        // (B,H,T,T)
  float* atty;                       // (N,C) attention output, input of the o-projection
  float* x_mid;                      // (N,C) residual stream between attention and MLP
  float *ln2, *ln2_mean, *ln2_rstd;
  float *h1, *h2;                    // (N,F): GELU: fc pre-activation; SwiGLU: gate, up
  float* act;                        // (N,F) MLP activation, input of the down projection
  bf16 *ln1_bf, *atty_bf, *ln2_bf, *act_bf;  // bf16 copies of linear inputs (bf16 mode)
};

struct Model::Acts {
  std::vector<LayerActs> L;
  std::vector<float*> xs;  // L+1 residual streams (N,C): xs[l] enters layer l
  float *lnf, *lnf_mean, *lnf_rstd;
  bf16* lnf_bf;
  float *logits, *losses, *lse, *dlosses;  // (N,V), (N), (N), (N)
  float* branch;                           // (N,C) a branch's output before the residual add
  // backward scratch
  float *dres, *dtmp, *dln, *datty, *dq, *dk, *dv, *dqkv, *dact, *dh1, *dh2;
  bf16* dout_bf;  // bf16 copy of a linear's output gradient (bf16 mode)
};

}  // namespace moe
