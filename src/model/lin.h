// A model's linear layers over its flat buffers, in fp32 or bf16 compute (bf16: the
// caller holds bf16 copies of the inputs and of the parameters; fp32 accumulation).
// W and b are offsets into the parameter (and gradient) buffers; b = npos: no bias.
// Shared by the decoder-only Model and the T5 encoder-decoder.
#pragma once
#include <cstddef>

#include "tensor/dtype.h"

namespace moe {

struct LinearBuffers {
  static constexpr size_t npos = size_t(-1);
  const float* P = nullptr;  // parameters
  const bf16* Pbf = nullptr; // their bf16 copy (bf16 compute)
  float* G = nullptr;        // gradients
  bf16* dout_bf = nullptr;   // scratch for a bf16 copy of dout (N * OC)
  bool use_bf16 = false;
};

// out (N,OC) = inp (N,IC) · W^T + b
void lin_forward(const LinearBuffers& lb, float* out, const float* inp, const bf16* inp_bf, size_t W, size_t b, int N,
                 int IC, int OC);
// dinp (N,IC) = dout · W (assigned, or added when acc_dinp; skipped when null); dW += dout^T · inp; db += sum dout.
void lin_backward(const LinearBuffers& lb, float* dinp, bool acc_dinp, const float* dout, const float* inp,
                  const bf16* inp_bf, size_t W, size_t b, int N, int IC, int OC);

}  // namespace moe
