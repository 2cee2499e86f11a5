// Training throughput of a model config: full optimizer steps (forward, backward,
// clipping, AdamW) on random tokens, timed; FLOPs by the usual model count
// (6 per matmul parameter per token, plus attention 12 L T C per token, PaLM's
// formula, counted for the full T x T scores although causal masking halves the
// useful work), so MFU is comparable with published figures.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "dist/comm.h"

#include "model/flops.h"
#include "model/lm.h"

namespace moe {

struct TrainBenchResult {
  std::string family, preset;
  Compute compute;
  int B = 0, T = 0, steps = 0;
  int Td = 0;  // T5: decoder tokens per row (span corruption's targets for T encoder tokens); 0: decoder-only
  size_t params = 0;
  double flops_per_token = 0;
  double best_step_s = 0, median_step_s = 0;
  bool recompute = false;
  size_t activation_bytes = 0;  // the model's arena + MoE buffers (Model::activation_bytes)
  double peak_rss_bytes = 0;    // VmHWM after the config's steps
  bool peak_rss_own = false;    // the peak was reset before the config (else: the process's so far)
  // Under mpirun (dist.comm of P > 1 ranks): B is the global batch; per-step seconds
  // in collectives (rank 0's, waits included) and every rank's peak memory.
  int ranks = 1, expert_parallel = 1;
  bool zero = false;
  double comm_fraction = 0;              // collective seconds / step seconds (rank 0)
  std::map<std::string, double> comm_bytes_per_step;  // per kind of collective (rank 0's sends)
  std::vector<double> rank_peak_rss_bytes;
  double tokens_per_s() const { return double(B) * (T + Td) / best_step_s; }  // T5: encoder + decoder tokens
  double tokens_per_s_median() const { return double(B) * (T + Td) / median_step_s; }
  double gflops() const { return flops_per_token * tokens_per_s() * 1e-9; }
};


struct TrainBenchDist {
  Comm* comm = nullptr;  // null or one rank: this process alone
  int expert_parallel = 1;
  bool zero = false;
};

// recompute: activation recomputation (Model::set_recompute). The process's peak
// resident memory is reset before the model is built (when the kernel allows) and read
// after the last step, so each configuration reports its own peak.
TrainBenchResult train_bench(const ModelConfig& cfg, const std::string& preset, Compute compute, int B, int T,
                             double min_seconds, bool recompute = false, const TrainBenchDist& dist = {});

}  // namespace moe
