#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ops/clip.h"
#include "train/expert_parallel.h"
#include "train/trainer.h"

namespace moe {

DataParallel::DataParallel(Comm* comm, size_t n_params, bool zero) {
  if (comm && comm->size() > 1) comm_ = comm, P_ = comm->size(), rank_ = comm->rank();
  zero_ = zero && P_ > 1;
  if (comm_) parts_.push_back({0, n_params, comm_, nullptr, Shards::even(n_params, P_)});
}

void DataParallel::set_experts(ExpertGroups* g, size_t experts_begin, size_t n_params) {
  if (!g || !g->active()) return;
  // [0, experts_begin): replicated, summed over every rank; the rest: this rank's
  // experts, summed over the ranks holding the same ones (edp), their squares over ep.
  parts_.clear();
  parts_.push_back({0, experts_begin, comm_, nullptr, Shards::even(experts_begin, P_)});
  parts_.push_back({experts_begin, n_params, g->edp.get(), g->ep.get(),
                    Shards::even(n_params - experts_begin, g->edp->size())});
}

double DataParallel::mean(double local) const {
  if (!active()) return local;
  double v = local;
  comm_->allreduce_sum(&v, 1);
  return v / P_;
}

double DataParallel::update(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute) const {
  float* g = m.grads().data();
  double sumsq = 0;
  for (const Part& p : parts_) {
    const size_t n = p.end - p.begin;
    reduce_scatter_sum(g + p.begin, n, p.shards, *p.comm);
    if (!zero_) allgather_shards(g + p.begin, n, p.shards, *p.comm);
    double s = shards_sumsq(g + p.begin, p.shards, *p.comm, !zero_);
    if (p.across) p.across->allreduce_sum(&s, 1);  // every expert part, in rank order
    sumsq += s;
  }
  const double norm = std::sqrt(sumsq);
  if (!std::isfinite(norm)) return norm;
  const float scale = clip_scale(norm, clip);
  if (!zero_) {
    adamw_step_full(m, opt, hp, lr, scale, compute);
    return norm;
  }
  FlatBuffer& params = m.params();  // mutable access: the bf16 copy is rebuilt by the next forward
  opt.step_shard(params, m.grads(), hp, lr, scale);
  for (const Part& p : parts_) allgather_shards(params.data() + p.begin, p.end - p.begin, p.shards, *p.comm);
  return norm;
}

AdamW::Ranges DataParallel::shard_ranges() const {
  AdamW::Ranges r;
  for (const Part& p : parts_) {
    const int me = p.comm->rank();
    r.emplace_back(p.begin + p.shards.begin[size_t(me)], p.begin + p.shards.end[size_t(me)]);
  }
  return r;
}

std::unique_ptr<AdamW> DataParallel::shard_of(const AdamW& full, const ParamLayout& layout) const {
  auto s = std::make_unique<AdamW>(layout, shard_ranges());
  size_t at = 0;
  for (const auto& [b, e] : s->ranges()) {
    std::memcpy(s->m_shard() + at, full.m().data() + b, (e - b) * sizeof(float));
    std::memcpy(s->v_shard() + at, full.v().data() + b, (e - b) * sizeof(float));
    at += e - b;
  }
  s->set_t(full.t());
  return s;
}

std::unique_ptr<AdamW> DataParallel::gather(AdamW& shard, const ParamLayout& layout) const {
  auto full = std::make_unique<AdamW>(layout);
  size_t at = 0;
  for (const auto& [b, e] : shard.ranges()) {
    std::memcpy(full->m().data() + b, shard.m_shard() + at, (e - b) * sizeof(float));
    std::memcpy(full->v().data() + b, shard.v_shard() + at, (e - b) * sizeof(float));
    at += e - b;
  }
  for (const Part& p : parts_) {
    allgather_shards(full->m().data() + p.begin, p.end - p.begin, p.shards, *p.comm);
    allgather_shards(full->v().data() + p.begin, p.end - p.begin, p.shards, *p.comm);
  }
  full->set_t(shard.t());
  return full;
}

void DataParallel::barrier() const {
  if (active()) comm_->barrier();
}

}  // namespace moe
