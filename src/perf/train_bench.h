// Training throughput of a model config: full optimizer steps (forward, backward,
// clipping, AdamW) on random tokens, timed; FLOPs by the usual model count
// (6 per matmul parameter per token, plus attention 12 L T C per token, PaLM's
// formula, counted for the full T x T scores although causal masking halves the
// useful work), so MFU is comparable with published figures.
#pragma once
#include <string>

#include "model/flops.h"
#include "model/model.h"

namespace moe {

struct TrainBenchResult {
  std::string family, preset;
  Compute compute;
  int B = 0, T = 0, steps = 0;
  size_t params = 0;
  double flops_per_token = 0;
  double best_step_s = 0, median_step_s = 0;
  double tokens_per_s() const { return double(B) * T / best_step_s; }
  double tokens_per_s_median() const { return double(B) * T / median_step_s; }
  double gflops() const { return flops_per_token * tokens_per_s() * 1e-9; }
};


TrainBenchResult train_bench(const ModelConfig& cfg, const std::string& preset, Compute compute, int B, int T,
                             double min_seconds);

}  // namespace moe
