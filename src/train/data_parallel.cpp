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
  size_t at = 0;
  for (const auto& [b, e] : expert_) {
    if (b > at) dense_.emplace_back(at, b);
    at = e;
  }
  if (at < n_params) dense_.emplace_back(at, n_params);
}

namespace {

// Sums the ranges of buf over c (every rank gets the rank-ordered sum), one bucket of
// up to kReduceBucketFloats at a time: the ranges are packed into the bucket, reduced
// (reduce-scatter + all-gather) and unpacked, so the staging stays one bucket.
void allreduce_ranges(float* buf, const std::vector<std::pair<size_t, size_t>>& ranges, Comm& c,
                      std::vector<float>& bucket) {
  if (c.size() == 1) return;
  bucket.resize(kReduceBucketFloats);
  std::vector<std::pair<float*, size_t>> segs;
  size_t i = 0, off = 0;  // the next range, and how far into it
  while (i < ranges.size()) {
    size_t n = 0;
    segs.clear();
    while (i < ranges.size() && n < bucket.size()) {
      const size_t len = std::min(ranges[i].second - ranges[i].first - off, bucket.size() - n);
      float* p = buf + ranges[i].first + off;
      std::copy(p, p + len, bucket.data() + n);
      segs.emplace_back(p, len);
      n += len, off += len;
      if (ranges[i].first + off == ranges[i].second) i++, off = 0;
    }
    const Shards s = Shards::even(n, c.size());
    reduce_scatter_sum(bucket.data(), n, s, c);
    allgather_shards(bucket.data(), n, s, c);
    const float* q = bucket.data();
    for (const auto& [p, len] : segs) std::copy(q, q + len, p), q += len;
  }
}

double ranges_sumsq(const float* buf, const std::vector<std::pair<size_t, size_t>>& ranges) {
  double s = 0;
  for (const auto& [b, e] : ranges) s += grad_sumsq(buf + b, e - b);
  return s;
}

}  // namespace

double DataParallel::update_ep(Model& m, AdamW& opt, const AdamWParams& hp, float lr, float clip,
                               Compute compute) const {
  float* g = m.grads().data();
  allreduce_ranges(g, dense_, *comm_, bucket_);      // every rank holds these
  allreduce_ranges(g, expert_, *eg_->edp, bucket_);  // only the ranks holding the same experts
  // Every rank now holds the same non-expert sums, and its ep group the same expert
  // parts: the same norm everywhere (the experts' squares added over ep in rank order).
  double experts = ranges_sumsq(g, expert_);
  eg_->ep->allreduce_sum(&experts, 1);
  const double norm = std::sqrt(ranges_sumsq(g, dense_) + experts);
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
