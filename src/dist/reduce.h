// Reductions of flat float buffers (gradients, parameters) over a communicator, in a
// fixed rank order, bucketed so that temporary memory stays bounded and no message
// exceeds MPI's int counts.
//
// Each rank owns one contiguous shard [begin[r], end[r]) of the buffer (Shards::even).
// reduce_scatter_sum leaves in the owner's shard the sum over ranks, added in rank order
// 0, 1, ..., P-1 (so every run, and the replicated and the sharded optimizer, get the same
// bits); allgather_shards then copies every shard from its owner to all ranks. Together
// they are an all-reduce; ZeRO-1 updates each shard between the two.
#pragma once
#include <cstddef>
#include <vector>

#include "dist/comm.h"

namespace moe {

struct Shards {
  std::vector<size_t> begin, end;  // per rank
  size_t size(int r) const { return end[size_t(r)] - begin[size_t(r)]; }
  // n elements in P near-equal contiguous shards (the first n % P one element longer).
  static Shards even(size_t n, int P);
};

inline constexpr size_t kReduceBucketFloats = size_t(4) << 20;  // 16 MB of floats per bucket

void reduce_scatter_sum(float* buf, size_t n, const Shards& s, Comm& c, size_t bucket = kReduceBucketFloats);
void allgather_shards(float* buf, size_t n, const Shards& s, Comm& c, size_t bucket = kReduceBucketFloats);

// Sum of squares of buf over all shards: each shard's grad_sumsq (computed by its owner,
// or by every rank when `replicated` holds the full reduced buffer), added in rank order.
double shards_sumsq(const float* buf, const Shards& s, Comm& c, bool replicated);

}  // namespace moe
