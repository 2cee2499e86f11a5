#include "perf/train_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "model/memory.h"
#include "ops/clip.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace moe {

TrainBenchResult train_bench(const ModelConfig& cfg, const std::string& preset, Compute compute, int B, int T,
                             double min_seconds, bool recompute) {
  using Clock = std::chrono::steady_clock;
  const bool own_peak = peak_rss_reset();
  Model m(cfg);
  m.set_recompute(recompute);
  m.init_weights(1);
  AdamW opt(m.layout());
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, cfg.vocab_size - 1);
  std::vector<int32_t> in(size_t(B) * T), tgt(size_t(B) * T);
  for (auto& t : in) t = tok(rng);
  for (auto& t : tgt) t = tok(rng);
  ForwardOptions fo;
  fo.compute = compute;
  const AdamWParams hp{1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
  auto step = [&] {
    m.grads().zero();
    m.forward(in.data(), tgt.data(), B, T, fo);
    m.backward();
    apply_update(m, opt, hp, hp.lr, 1.0f, compute);
  };
  step();  // warm-up: allocates the activations, creates the GEMM primitives
  step();
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t0 = Clock::now();
    step();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  TrainBenchResult r;
  r.family = cfg.family, r.preset = preset, r.compute = compute, r.B = B, r.T = T;
  r.steps = int(times.size());
  r.params = m.num_params();
  r.flops_per_token = model_train_flops_per_token(m, T);
  r.best_step_s = times.front();
  r.median_step_s = times[times.size() / 2];
  r.recompute = recompute;
  r.activation_bytes = m.activation_bytes();
  r.peak_rss_bytes = peak_rss_bytes();
  r.peak_rss_own = own_peak;
  return r;
}

}  // namespace moe
