// The sum of squares of a float buffer, in double, deterministic for any thread count:
// the gradient norm's (ops/clip.h) and the distributed norm's shards (dist/reduce.h).
#pragma once
#include <cstddef>

namespace moe {

// sum of g[i]^2 in double, in fixed chunks (deterministic for any thread count);
// grad_norm is its square root. Distributed runs add the shards' sums in rank order.
double grad_sumsq(const float* g, size_t n);

}  // namespace moe
