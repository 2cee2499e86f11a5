#include "perf/train_bench.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "model/arch.h"
#include "model/memory.h"
#include "ops/clip.h"
#include "train/data_parallel.h"
#include "train/expert_parallel.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace moe {

TrainBenchResult train_bench(const ModelConfig& cfg, const std::string& preset, Compute compute, int B, int T,
                             double min_seconds, bool recompute, const TrainBenchDist& dist) {
  using Clock = std::chrono::steady_clock;
  const bool own_peak = peak_rss_reset();
  Comm* comm = dist.comm && dist.comm->size() > 1 ? dist.comm : nullptr;
  const int P = comm ? comm->size() : 1, EP = comm ? dist.expert_parallel : 1;
  if (B % P != 0)
    throw std::invalid_argument("--batch " + std::to_string(B) + " must be a multiple of the " + std::to_string(P) +
                                " ranks");
  std::unique_ptr<ExpertGroups> eg = comm && EP > 1 ? make_expert_groups(*comm, EP) : nullptr;
  if (eg) family_require(cfg, Capability::ExpertParallel);
  std::unique_ptr<LanguageModel> mp = arch_of(cfg).build(cfg, BuildArgs{true, eg ? eg->split() : ExpertSplit{}});
  LanguageModel& m = *mp;
  m.set_recompute(recompute);
  m.init_weights(1);
  DataParallel dp(comm, m.params().numel(), dist.zero);
  if (eg) dp.set_experts(eg.get(), experts_begin(m.layout()), m.params().numel());
  m.set_moe_group(comm);
  std::unique_ptr<AdamW> optp = dp.zero() ? std::make_unique<AdamW>(m.layout(), dp.shard_ranges())
                                          : std::make_unique<AdamW>(m.layout());
  AdamW& opt = *optp;
  const int Bl = B / P;
  const std::vector<Comm*> comms{comm, eg ? eg->ep.get() : nullptr, eg ? eg->edp.get() : nullptr};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, cfg.vocab_size - 1);
  // T5: span corruption's shapes, T encoder tokens and its targets (568 raw -> 512, 114).
  const int Td = arch_of(cfg).decoder_tokens(T);
  TokenBatch batch;
  batch.resize(B, T, Td);
  for (auto* v : {&batch.inputs, &batch.dec, &batch.targets})
    for (auto& t : *v) t = tok(rng);
  ForwardOptions fo;
  fo.compute = compute;
  fo.token_offset = int64_t(dp.rank()) * Bl * T;
  const AdamWParams hp{1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
  auto step = [&] {
    m.grads().zero();
    m.forward_rows(batch, dp.rank() * Bl, Bl, fo);
    m.backward(1.0f / float(P));
    if (comm) dp.update(m, opt, hp, hp.lr, 1.0f, compute);
    else apply_update(m, opt, hp, hp.lr, 1.0f, compute);
  };
  step();  // warm-up: allocates the activations, creates the GEMM primitives
  step();
  if (comm)
    for (Comm* c : comms)
      if (c) c->reset_stats();
  std::vector<double> times;
  const auto start = Clock::now();
  for (;;) {
    // Rank 0's clock decides, so that every rank runs the same steps.
    int more = times.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds;
    if (comm) comm->broadcast(&more, sizeof more, 0);
    if (!more) break;
    const auto t0 = Clock::now();
    step();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double total = 0;
  for (double t : times) total += t;
  std::sort(times.begin(), times.end());
  TrainBenchResult r;
  r.family = cfg.family, r.preset = preset, r.compute = compute, r.B = B, r.T = T, r.Td = Td;
  r.steps = int(times.size());
  r.params = model_param_counts(cfg).total;  // the whole model's, whatever this rank holds
  r.flops_per_token = m.train_flops_per_token(T, Td);
  r.best_step_s = times.front();
  r.median_step_s = times[times.size() / 2];
  r.recompute = recompute;
  r.activation_bytes = m.activation_bytes();
  r.peak_rss_bytes = peak_rss_bytes();
  r.peak_rss_own = own_peak;
  r.ranks = P, r.expert_parallel = EP, r.zero = dp.zero();
  if (comm) {
    double secs = 0;
    for (const auto& [kind, cs] : comm_stats_sum({comms.begin(), comms.end()})) {
      if (kind == "broadcast") continue;  // the loop's own step agreement
      secs += cs.seconds;
      r.comm_bytes_per_step[kind] = cs.bytes / double(times.size());
    }
    r.comm_fraction = total > 0 ? secs / total : 0;
    r.rank_peak_rss_bytes.resize(size_t(P));
    double mine = r.peak_rss_bytes;
    comm->allgather(&mine, sizeof mine, r.rank_peak_rss_bytes.data());
  }
  return r;
}

}  // namespace moe
