// Inverted dropout, seeded and deterministic: element i is kept when
//   dropout_uniform(seed, i) >= p,  and kept values are scaled by 1/(1-p).
// The mask is a pure function of (seed, i): the same for any thread count, and the
// backward recomputes it instead of storing it. p == 0 is the identity; 0 <= p < 1.
// Backward: dinp assigned (may alias dout). `first` offsets the element index (element i
// draws dropout_uniform(seed, first + i)): a slice of a larger tensor, such as one rank's
// rows of the global batch, gets that tensor's mask.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moe {

// splitmix64(splitmix64(seed) + i) >> 40, scaled to [0, 1) with 24 bits.
float dropout_uniform(uint64_t seed, uint64_t i);

template <typename S>
void dropout_forward_ref(S* out, const S* inp, size_t n, float p, uint64_t seed, uint64_t first = 0);
template <typename S>
void dropout_backward_ref(S* dinp, const S* dout, size_t n, float p, uint64_t seed, uint64_t first = 0);

void dropout_forward(float* out, const float* inp, size_t n, float p, uint64_t seed, uint64_t first = 0);
void dropout_backward(float* dinp, const float* dout, size_t n, float p, uint64_t seed, uint64_t first = 0);

}  // namespace moe
