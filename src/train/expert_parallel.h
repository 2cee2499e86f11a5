// Expert parallelism in the training loop. P ranks = DP data-parallel groups x EP
// expert ranks; world rank r is expert rank r % EP of data-parallel group r / EP, so
// that the ranks of one expert group hold consecutive slices of every global batch.
//
//   ep:  the EP ranks of one data-parallel group: they hold the E/EP-expert parts of
//        every MoE layer and exchange token rows (ExpertSplit::group, given to the model when it is built).
//   edp: the DP ranks holding the same experts: expert gradients are summed over them
//        only. Every other gradient is summed over all P ranks. Each rank's loss is
//        its 1/P share of the global mean, so both sums give the one-process gradient
//        (summing expert gradients over all P, or scaling them by EP, would not).
//
// Checkpoints stay one HF directory: the expert parts are gathered to rank 0, which
// writes the full model and moments (it holds the whole model while writing).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "dist/comm.h"
#include "model/lm.h"
#include "train/optimizer.h"

namespace moe {

struct ExpertGroups {
  int EP = 1, DP = 1;
  Comm* world = nullptr;
  std::unique_ptr<Comm> ep, edp;
  bool active() const { return EP > 1; }
  ExpertSplit split() const { return ep ? ExpertSplit{ep->rank(), EP, ep.get()} : ExpertSplit{}; }
  int dp_rank() const { return world ? world->rank() / EP : 0; }
  std::vector<const Comm*> comms() const { return {world, ep.get(), edp.get()}; }  // for comm_stats_sum
};

// Splits `world` (every rank calls it). EP must divide the world's size.
std::unique_ptr<ExpertGroups> make_expert_groups(Comm& world, int EP);

// Where a partial split's expert tensors ('*' names) start in its flat buffers: all of
// them come after every other tensor (model_layout). Throws when they do not.
size_t experts_begin(const ParamLayout& layout);

// The full model and moments gathered from the expert parts, on world rank 0 (null
// elsewhere). Every rank of data-parallel group 0 takes part; the others return at once.
std::unique_ptr<LanguageModel> gather_model(const LanguageModel& part, ExpertGroups& g);
std::unique_ptr<AdamW> gather_optimizer(const AdamW& part, const LanguageModel& part_model, const LanguageModel* full,
                                        ExpertGroups& g);

}  // namespace moe
