#include "model/lin.h"

#include "ops/bias.h"
#include "ops/linear.h"
#include "ops/matmul.h"

namespace moe {

void lin_forward(const LinearBuffers& lb, float* out, const float* inp, const bf16* inp_bf, size_t W, size_t b, int N,
                 int IC, int OC) {
  const float* bias = b == LinearBuffers::npos ? nullptr : lb.P + b;
  if (lb.use_bf16) linear_forward_bf16(out, inp_bf, lb.Pbf + W, bias, N, IC, OC);
  else linear_forward(out, inp, lb.P + W, bias, N, IC, OC);
}

void lin_backward(const LinearBuffers& lb, float* dinp, bool acc_dinp, const float* dout, const float* inp,
                  const bf16* inp_bf, size_t W, size_t b, int N, int IC, int OC) {
  float* dW = lb.G + W;
  if (lb.use_bf16) {
    f32_to_bf16(lb.dout_bf, dout, size_t(N) * OC);
    if (dinp) matmul_bf16(dinp, lb.dout_bf, lb.Pbf + W, N, IC, OC, false, false, acc_dinp);
    matmul_bf16(dW, lb.dout_bf, inp_bf, OC, IC, N, true, false, true);
  } else {
    if (dinp) matmul(dinp, dout, lb.P + W, N, IC, OC, false, false, acc_dinp);
    matmul(dW, dout, inp, OC, IC, N, true, false, true);
  }
  if (b != LinearBuffers::npos) bias_backward(lb.G + b, dout, N, OC);
}

}  // namespace moe
