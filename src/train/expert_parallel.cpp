#include "train/expert_parallel.h"

#include "model/arch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace moe {

std::unique_ptr<ExpertGroups> make_expert_groups(Comm& world, int EP) {
  const int P = world.size(), r = world.rank();
  if (EP < 1 || P % EP != 0)
    throw std::invalid_argument("--expert-parallel " + std::to_string(EP) + " must divide the " + std::to_string(P) +
                                " ranks");
  auto g = std::make_unique<ExpertGroups>();
  g->EP = EP, g->DP = P / EP, g->world = &world;
  if (EP > 1) {
    g->ep = world.split(r / EP, r % EP);
    g->edp = world.split(r % EP, r / EP);
  }
  return g;
}

size_t experts_begin(const ParamLayout& layout) {
  size_t first = layout.numel(), last_other = 0;
  for (const ParamSpec& s : layout.specs()) {
    if (s.name.find('*') != std::string::npos) first = std::min(first, s.offset);
    else last_other = std::max(last_other, s.offset + size_t(s.shape.numel()));
  }
  if (last_other > first) throw std::logic_error("experts_begin: the expert tensors are not after the others");
  return first;
}

namespace {

// Copies tensor by tensor from `part` (this rank's buffer in the part layout) into
// `full` (root only): non-expert tensors as they are, expert tensors gathered over ep
// (rank i holds rows [i El, (i+1) El): rank order is expert order).
void gather_buffer(const float* part, const ParamLayout& pl, float* full, const ParamLayout* fl, Comm& ep) {
  const bool root = ep.rank() == 0;
  const int P = ep.size();
  for (const ParamSpec& s : pl.specs()) {
    const size_t n = size_t(s.shape.numel());
    float* dst = root ? full + fl->at(s.name).offset : nullptr;
    if (s.name.find('*') == std::string::npos) {
      if (root) std::memcpy(dst, part + s.offset, n * sizeof(float));
      continue;
    }
    ep.gatherv(part + s.offset, dst, std::vector<size_t>(size_t(P), n * sizeof(float)), 0);
  }
}

}  // namespace

std::unique_ptr<LanguageModel> gather_model(const LanguageModel& part, ExpertGroups& g) {
  if (!g.active()) throw std::logic_error("gather_model: no expert parallelism");
  if (g.dp_rank() != 0) return nullptr;
  std::unique_ptr<LanguageModel> full;
  if (g.ep->rank() == 0) full = arch_of(part.config()).build(part.config(), BuildArgs{false, {}});
  gather_buffer(part.params().data(), part.layout(), full ? full->params().data() : nullptr,
                full ? &full->layout() : nullptr, *g.ep);
  return full;
}

std::unique_ptr<AdamW> gather_optimizer(const AdamW& part, const LanguageModel& part_model, const LanguageModel* full,
                                        ExpertGroups& g) {
  if (!g.active()) throw std::logic_error("gather_optimizer: no expert parallelism");
  if (g.dp_rank() != 0) return nullptr;
  std::unique_ptr<AdamW> out;
  if (full) out = std::make_unique<AdamW>(full->layout());
  gather_buffer(part.m().data(), part_model.layout(), out ? out->m().data() : nullptr,
                full ? &full->layout() : nullptr, *g.ep);
  gather_buffer(part.v().data(), part_model.layout(), out ? out->v().data() : nullptr,
                full ? &full->layout() : nullptr, *g.ep);
  if (out) out->set_t(part.t());
  return out;
}

}  // namespace moe
