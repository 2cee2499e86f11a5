// Memory arithmetic of a model, computed from its config without allocating it:
// parameters, gradients, AdamW moments, the bf16 compute copy and activations, in
// bytes, for one process or for one rank of a distributed layout (P = DP x EP ranks,
// ZeRO-1). Used to refuse a config that cannot fit before anything is allocated
// (an absurd layer count or vocabulary in an untrusted config.json), and to plan runs
// (`moe train --plan`).
#pragma once
#include <string>

#include "model/config.h"

namespace moe {

struct MemoryOptions {
  bool training = true;   // gradients, moments and the backward's buffers
  bool bf16 = false;      // bf16 compute copy of the weights
  bool recompute = false; // activation recomputation: one layer's activations, not L
  int B = 0, T = 0;       // the global batch (sequences) and sequence length; 0: no activations
  // Distributed layout: P ranks = DP x EP. Each MoE layer's experts are split E/EP per
  // rank (everything else replicated); zero = 1 shards the AdamW moments over the
  // ranks that hold the same parameters; each rank runs ceil(B / P) sequences.
  int ranks = 1, expert_parallel = 1, zero = 0;
};

// Bytes, per rank (the whole process when ranks = 1).
struct MemoryEstimate {
  double n_params = 0;        // parameters (total, all experts)
  double n_params_rank = 0;   // parameters held by one rank (its E/EP experts)
  double params = 0;          // fp32 master weights
  double grads = 0;           // fp32 gradients (training; also the all-reduce buffer)
  double moments = 0;         // AdamW exp_avg + exp_avg_sq, fp32 (training), ZeRO-1 sharded
  double bf16_copy = 0;       // bf16 compute copy of the weights (bf16 training), and below AVX-512
                              // the f32 copies of one GEMM's bf16 operands (tensor/cpu.h)
  double activations = 0;     // the activation arena for the rank's batch plus the MoE blocks' buffers
  double layer_activations = 0;  // of which one layer's kept activations (what recompute saves L-1 of)
  double comm = 0;            // P > 1: the gradient reduction's staging buckets (MPI's own memory not counted)
  int local_batch = 0;        // sequences per rank
  double total() const { return params + grads + moments + bf16_copy + activations + comm; }
};

// Parameters of a config's model, counted in floating point so that an absurd
// config cannot overflow (the exact count of a valid one: model_param_counts).
double model_param_count(const ModelConfig& c);
// Of which the experts' weights (w1, w3, w2 and their biases; not the routers).
double model_expert_param_count(const ModelConfig& c);

MemoryEstimate model_memory_estimate(const ModelConfig& c, const MemoryOptions& o);
// training: parameters, gradients, moments and activations for a B x T batch;
// else parameters and activations (evaluation, generation). B or T of 0: no activations.
MemoryEstimate model_memory_estimate(const ModelConfig& c, bool training, bool bf16, int B, int T);

// Physical memory of this machine in bytes (MOE_MEMORY_LIMIT, in bytes, overrides it).
double machine_memory_bytes();

// Peak resident set of this process so far, in bytes (VmHWM; 0 when unknown).
double peak_rss_bytes();
// Resets that peak to the current resident set (Linux >= 4.0, /proc/self/clear_refs);
// false when the kernel refused: the peak then stays the process's.
bool peak_rss_reset();

// "1.5 GiB"
std::string bytes_human(double bytes);

// Throws std::runtime_error "<source>: this model needs about X (...) but this
// machine has Y of memory" when the estimate exceeds the machine's memory.
void model_check_memory(const ModelConfig& c, bool training, bool bf16, int B, int T, const std::string& source);
void model_check_memory(const ModelConfig& c, const MemoryOptions& o, const std::string& source);

}  // namespace moe
