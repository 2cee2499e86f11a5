#include "train/data_parallel.h"

#include <cmath>
#include <cstring>

#include "ops/clip.h"
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

double DataParallel::update(Model& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute) const {
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
