#include "ops/linear.h"

#include "ops/bias.h"
#include "ops/matmul.h"

namespace moe {

template <typename S>
void linear_forward_ref(S* out, const S* inp, const S* W, const S* b, int N, int IC, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double acc = b ? double(b[o]) : 0.0;
      for (int i = 0; i < IC; i++) acc += double(inp[size_t(n) * IC + i]) * double(W[size_t(o) * IC + i]);
      out[size_t(n) * OC + o] = S(acc);
    }
}

template <typename S>
void linear_backward_ref(S* dinp, S* dW, S* db, const S* dout, const S* inp, const S* W, int N, int IC, int OC) {
  if (dinp)
    for (int n = 0; n < N; n++)
      for (int i = 0; i < IC; i++) {
        double acc = 0;
        for (int o = 0; o < OC; o++) acc += double(dout[size_t(n) * OC + o]) * double(W[size_t(o) * IC + i]);
        dinp[size_t(n) * IC + i] = S(acc);
      }
  for (int o = 0; o < OC; o++)
    for (int i = 0; i < IC; i++) {
      double acc = 0;
      for (int n = 0; n < N; n++) acc += double(dout[size_t(n) * OC + o]) * double(inp[size_t(n) * IC + i]);
      dW[size_t(o) * IC + i] += S(acc);
    }
  if (db) bias_backward_ref(db, dout, N, OC);
}

template void linear_forward_ref<float>(float*, const float*, const float*, const float*, int, int, int);
template void linear_forward_ref<double>(double*, const double*, const double*, const double*, int, int, int);
template void linear_backward_ref<float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                         int);
template void linear_backward_ref<double>(double*, double*, double*, const double*, const double*, const double*,
                                          int, int, int);

// out (N,OC) = inp (N,IC) · W^T: W (OC,IC) is B stored transposed.
void linear_forward(float* out, const float* inp, const float* W, const float* b, int N, int IC, int OC) {
  matmul(out, inp, W, N, OC, IC, false, true, false);
  if (b) bias_forward(out, b, N, OC);
}

void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp, const float* W, int N,
                     int IC, int OC) {
  if (dinp) matmul(dinp, dout, W, N, IC, OC, false, false, false);  // (N,OC)·(OC,IC)
  matmul(dW, dout, inp, OC, IC, N, true, false, true);               // (OC,N)·(N,IC), +=
  if (db) bias_backward(db, dout, N, OC);
}

void linear_forward_bf16(float* out, const bf16* inp, const bf16* W, const float* b, int N, int IC, int OC) {
  matmul_bf16(out, inp, W, N, OC, IC, false, true, false);
  if (b) bias_forward(out, b, N, OC);
}

void linear_backward_bf16(float* dinp, float* dW, float* db, const float* dout, const bf16* dout_bf,
                          const bf16* inp, const bf16* W, int N, int IC, int OC) {
  if (dinp) matmul_bf16(dinp, dout_bf, W, N, IC, OC, false, false, false);
  matmul_bf16(dW, dout_bf, inp, OC, IC, N, true, false, true);
  if (db) bias_backward(db, dout, N, OC);
}

}  // namespace moe
