#include "ops/residual.h"

namespace moe {

template <typename S>
void residual_forward_ref(S* out, const S* a, const S* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

template <typename S>
void residual_backward_ref(S* da, S* db, const S* dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

template void residual_forward_ref<float>(float*, const float*, const float*, size_t);
template void residual_forward_ref<double>(double*, const double*, const double*, size_t);
template void residual_backward_ref<float>(float*, float*, const float*, size_t);
template void residual_backward_ref<double>(double*, double*, const double*, size_t);

void residual_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

}  // namespace moe
