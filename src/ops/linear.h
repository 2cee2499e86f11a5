// Linear layer as torch.nn.Linear: out (N,OC) = inp (N,IC) · W^T + b,  W (OC,IC), b (OC) or null.
// A composition of matmul and bias; backward:
//   dinp (N,IC) = dout · W          (assigned; skipped when dinp is null)
//   dW  (OC,IC) += dout^T · inp      db (OC) += sum_n dout
#pragma once
#include <cstddef>
#include "tensor/dtype.h"

namespace moe {

template <typename S>
void linear_forward_ref(S* out, const S* inp, const S* W, const S* b, int N, int IC, int OC);
template <typename S>
void linear_backward_ref(S* dinp, S* dW, S* db, const S* dout, const S* inp, const S* W, int N, int IC, int OC);

void linear_forward(float* out, const float* inp, const float* W, const float* b, int N, int IC, int OC);
void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp, const float* W, int N,
                     int IC, int OC);

// bf16 compute, fp32 accumulation and outputs. The caller holds bf16 copies of the
// operands (inp, W, and dout for the backward); db is summed from the fp32 dout.
void linear_forward_bf16(float* out, const bf16* inp, const bf16* W, const float* b, int N, int IC, int OC);
void linear_backward_bf16(float* dinp, float* dW, float* db, const float* dout, const bf16* dout_bf,
                          const bf16* inp, const bf16* W, int N, int IC, int OC);

}  // namespace moe
