// Data parallelism for the training loop: P ranks each run an equal share (B / P
// sequences) of every global batch; after the backward the gradients are summed over
// the ranks (each rank's loss is its share of the global mean, so a plain sum gives
// the global gradient) with a rank-ordered, bucketed reduce-scatter, the global norm is
// the rank-ordered sum of the shards' squares, and then either
//   replicated: the reduced gradient is all-gathered and every rank runs the full AdamW;
//   ZeRO-1:     each rank updates only its shard of the parameters with its shard of the
//               AdamW moments, then the parameters are all-gathered.
// Both give the same bits (dist/reduce.h, train/optimizer.h).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "dist/comm.h"
#include "dist/reduce.h"
#include "model/lm.h"
#include "train/optimizer.h"

namespace moe {

struct ExpertGroups;

class DataParallel {
 public:
  // comm null or of size 1: one process (every call below is then the identity).
  DataParallel(Comm* comm, size_t n_params, bool zero);
  int size() const { return P_; }
  int rank() const { return rank_; }
  bool active() const { return P_ > 1; }
  bool zero() const { return zero_; }
  Comm* comm() const { return comm_; }

  // The mean over ranks of one value per rank (rank order; NaN anywhere gives NaN).
  double mean(double local) const;
  // Reduces the gradients and applies AdamW; returns the global gradient norm before
  // clipping (no update when it is not finite, on any rank).
  double update(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute) const;
  // This rank's ZeRO-1 shard of a full optimizer (the moments of its elements, and t).
  std::unique_ptr<AdamW> shard_of(const AdamW& full, const ParamLayout& layout) const;
  // This rank's ZeRO-1 shard of every part of the flat buffers (AdamW's ranges).
  AdamW::Ranges shard_ranges() const;
  // A full optimizer gathered from every rank's shard (for a checkpoint).
  std::unique_ptr<AdamW> gather(AdamW& shard, const ParamLayout& layout) const;
  void barrier() const;

  // Expert parallelism (train/expert_parallel.h): the flat buffers are [replicated |
  // this rank's experts] (a partial split's layout, experts from `experts_begin`). The
  // replicated part is summed over every rank, the experts over g.edp only (the ranks
  // holding the same experts); the global norm adds both parts' squares (the experts'
  // over g.ep); ZeRO-1 shards each part over its own group. Call before shard_of.
  void set_experts(ExpertGroups* g, size_t experts_begin, size_t n_params);

 private:
  // A range of the flat buffers reduced over one group (and, for the norm, across another).
  struct Part {
    size_t begin, end;
    Comm* comm;
    Comm* across;
    Shards shards;
  };
  Comm* comm_ = nullptr;
  int P_ = 1, rank_ = 0;
  bool zero_ = false;
  std::vector<Part> parts_;
};

}  // namespace moe
