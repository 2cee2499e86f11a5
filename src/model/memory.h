// Memory arithmetic of a model, computed from its config without allocating it:
// parameters, gradients, AdamW moments, the bf16 compute copy and activations, in
// bytes. Used to refuse a config that cannot fit before anything is allocated
// (an absurd layer count or vocabulary in an untrusted config.json), and to size runs.
#pragma once
#include <string>

#include "model/config.h"

namespace moe {

struct MemoryEstimate {
  double n_params = 0;     // parameters (total, all experts)
  double params = 0;       // fp32 master weights
  double grads = 0;        // fp32 gradients (training)
  double moments = 0;      // AdamW exp_avg + exp_avg_sq, fp32 (training)
  double bf16_copy = 0;    // bf16 compute copy of the weights (bf16 training)
  double activations = 0;  // the activation arena for B x T plus the MoE blocks' scratch
  double total() const { return params + grads + moments + bf16_copy + activations; }
};

// Parameters of a config's model, counted in floating point so that an absurd
// config cannot overflow (the exact count of a valid one: model_param_counts).
double model_param_count(const ModelConfig& c);

// training: parameters, gradients, moments and activations for a B x T batch;
// else parameters and activations (evaluation, generation). B or T of 0: no activations.
MemoryEstimate model_memory_estimate(const ModelConfig& c, bool training, bool bf16, int B, int T);

// Physical memory of this machine in bytes (MOE_MEMORY_LIMIT, in bytes, overrides it).
double machine_memory_bytes();

// "1.5 GiB"
std::string bytes_human(double bytes);

// Throws std::runtime_error "<source>: this model needs about X (...) but this
// machine has Y of memory" when the estimate exceeds the machine's memory.
void model_check_memory(const ModelConfig& c, bool training, bool bf16, int B, int T, const std::string& source);

}  // namespace moe
