#include "train/data_parallel.h"

#include <cmath>
#include <algorithm>
#include <cstring>

#include "ops/clip.h"
#include "train/expert_parallel.h"
#include "train/trainer.h"

namespace moe {

DataParallel::DataParallel(Comm* comm, size_t n_params, bool zero) {
  if (comm && comm->size() > 1) comm_ = comm, P_ = comm->size(), rank_ = comm->rank();
  zero_ = zero && P_ > 1;
  shards_ = Shards::even(n_params, P_);
}

double DataParallel::mean(double local) const {
  if (!active()) return local;
  double v = local;
  comm_->allreduce_sum(&v, 1);
  return v / P_;
}

void DataParallel::set_experts(ExpertGroups* g, std::vector<std::pair<size_t, size_t>> ranges, size_t n_params) {
  if (!g || !g->active()) return;
  if (zero_) throw std::invalid_argument("--zero 1 with --expert-parallel is not supported: use one of them");
  eg_ = g;
  expert_ = std::move(ranges);
  size_t at = 0, ne = 0;
  for (const auto& [b, e] : expert_) {
    if (b > at) dense_.emplace_back(at, b);
    at = e, ne += e - b;
  }
  if (at < n_params) dense_.emplace_back(at, n_params);
  shards_ = Shards::even(n_params - ne, P_);
  expert_shards_ = Shards::even(ne, g->DP);
  dbuf_.resize(n_params - ne), ebuf_.resize(ne);
}

namespace {
// Copies the ranges of buf to one contiguous vector (pack) or back (unpack).
void pack(const float* buf, const std::vector<std::pair<size_t, size_t>>& r, float* out) {
  for (const auto& [b, e] : r) out = std::copy(buf + b, buf + e, out);
}
void unpack(const float* in, const std::vector<std::pair<size_t, size_t>>& r, float* buf) {
  for (const auto& [b, e] : r) std::copy(in, in + (e - b), buf + b), in += e - b;
}
}  // namespace

double DataParallel::update_ep(Model& m, AdamW& opt, const AdamWParams& hp, float lr, float clip,
                               Compute compute) const {
  float* g = m.grads().data();
  pack(g, dense_, dbuf_.data());
  pack(g, expert_, ebuf_.data());
  reduce_scatter_sum(dbuf_.data(), dbuf_.size(), shards_, *comm_);
  allgather_shards(dbuf_.data(), dbuf_.size(), shards_, *comm_);
  reduce_scatter_sum(ebuf_.data(), ebuf_.size(), expert_shards_, *eg_->edp);
  allgather_shards(ebuf_.data(), ebuf_.size(), expert_shards_, *eg_->edp);
  double experts = shards_sumsq(ebuf_.data(), expert_shards_, *eg_->edp, true);
  eg_->ep->allreduce_sum(&experts, 1);  // every part of the experts, in expert order
  const double norm = std::sqrt(shards_sumsq(dbuf_.data(), shards_, *comm_, true) + experts);
  unpack(dbuf_.data(), dense_, g);
  unpack(ebuf_.data(), expert_, g);
  if (!std::isfinite(norm)) return norm;
  adamw_step_full(m, opt, hp, lr, clip_scale(norm, clip), compute);
  return norm;
}

double DataParallel::update(Model& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute) const {
  if (eg_) return update_ep(m, opt, hp, lr, clip, compute);
  FlatBuffer& g = m.grads();
  const size_t n = g.numel();
  reduce_scatter_sum(g.data(), n, shards_, *comm_);
  if (!zero_) allgather_shards(g.data(), n, shards_, *comm_);
  const double norm = std::sqrt(shards_sumsq(g.data(), shards_, *comm_, !zero_));
  if (!std::isfinite(norm)) return norm;
  const float scale = clip_scale(norm, clip);
  if (!zero_) {
    adamw_step_full(m, opt, hp, lr, scale, compute);
    return norm;
  }
  FlatBuffer& p = m.params();  // mutable access: the bf16 copy is rebuilt by the next forward
  opt.step_shard(p, g, hp, lr, scale);
  allgather_shards(p.data(), n, shards_, *comm_);
  return norm;
}

std::unique_ptr<AdamW> DataParallel::shard_of(const AdamW& full, const ParamLayout& layout) const {
  const size_t b = shards_.begin[size_t(rank_)], e = shards_.end[size_t(rank_)];
  auto s = std::make_unique<AdamW>(layout, b, e);
  std::memcpy(s->m_shard(), full.m().data() + b, (e - b) * sizeof(float));
  std::memcpy(s->v_shard(), full.v().data() + b, (e - b) * sizeof(float));
  s->set_t(full.t());
  return s;
}

std::unique_ptr<AdamW> DataParallel::gather(AdamW& shard, const ParamLayout& layout) const {
  auto full = std::make_unique<AdamW>(layout);
  const size_t b = shard.begin(), e = shard.end(), n = layout.numel();
  std::memcpy(full->m().data() + b, shard.m_shard(), (e - b) * sizeof(float));
  std::memcpy(full->v().data() + b, shard.v_shard(), (e - b) * sizeof(float));
  allgather_shards(full->m().data(), n, shards_, *comm_);
  allgather_shards(full->v().data(), n, shards_, *comm_);
  full->set_t(shard.t());
  return full;
}

void DataParallel::barrier() const {
  if (active()) comm_->barrier();
}

}  // namespace moe
