// The activations a T5 forward keeps for its backward, and the backward's scratch.
// Private to t5_*.cpp.
#pragma once
#include <vector>

#include "model/t5/t5.h"

namespace moe {

struct T5Model::LayerActs {
  float *ln1, *ln1_rstd;           // (N,C), (N)
  float *q, *k, *v, *att, *atty;   // (N,Cq) x 3, (B,H,T,T), (N,Cq)
  float* x_mid;                    // (N,C) after self-attention
  // decoder: cross-attention (keys and values from the encoder output, Ne rows)
  float *lnx, *lnx_rstd, *xq, *xk, *xv, *xatt, *xatty, *x_mid2;
  float *ln2, *ln2_rstd, *h1, *h2, *act;  // MLP: h1 wi_0 / wi, h2 wi_1 (gated), act (N,F)
  bf16 *ln1_bf, *atty_bf, *lnx_bf, *xatty_bf, *ln2_bf, *act_bf;
};

struct T5Model::Acts {
  std::vector<float> fstore;  // every float buffer below, carved once per (B, Te, Td)
  std::vector<bf16> bstore;
  std::vector<LayerActs> enc, dec;
  std::vector<float*> xe, xd;  // residual streams entering each layer (+ the last output)
  float *bias_enc, *bias_dec;  // (H,Te,Te), (H,Td,Td) relative position biases
  float *enc_out, *enc_rstd, *dec_out, *dec_rstd, *head_in;  // head_in: dec_out (scaled when tied)
  bf16 *enc_out_bf, *head_in_bf;
  float *logits, *losses, *lse, *dlosses;
  float* branch;  // (max N, C)
  // backward scratch (sized for the larger stack)
  float *dres, *dtmp, *dln, *datty, *dq, *dk, *dv, *dscores, *dact, *dh1, *dh2, *denc;
  bf16* dout_bf;
};

}  // namespace moe
