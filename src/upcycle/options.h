// What an upcycling asks for, whatever the family: the number of experts, routing,
// layers, the expert-making strategy (expert_init.h) and what is stored in config.json.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace moe {

enum class UpcycleStrategy { Copy, Noise, Drop, Granular };

struct UpcycleOptions {
  int experts = 8;                 // E
  int top_k = 2;                   // K, stored in config.json
  bool renormalize = true;         // combine: renormalised top-k (exact at step 0) or raw gates (Switch)
  std::vector<int> layers;         // MoE layers; empty: every other (1, 3, ...) unless all_layers
  bool all_layers = false;
  UpcycleStrategy strategy = UpcycleStrategy::Copy;
  float noise = 0.01f;             // Noise: std relative to each weight's std
  float drop_rate = 0.5f;          // Drop: fraction of each expert's units re-initialised
  int granularity = 1;             // G (Granular: > 1; any strategy may shard)
  float weight_scale = 0.0f;       // down-projection multiplier; 0: automatic (G / combine mass when G > 1, else 1)
  // Raw gates: scale the down projections by G / combine mass (K/E) also when G = 1, so a
  // uniform router gives the dense output at step 0 (the NVIDIA study's weight scaling
  // for softmax-then-top-k Switch routing; top-1 of E experts: x E).
  bool scale_to_dense = false;
  float router_std = -1.0f;        // router init std; < 0: Switch's sqrt(0.1 / C); 0: zeros
  // Stored in config.json. The paper trained at capacity factor 2; evaluation is
  // dropless so that the step-0 check (and eval) see every token through its experts.
  float capacity_factor = 2.0f, eval_capacity_factor = 0.0f;
  float aux_coef = 0.01f, z_coef = 1e-3f;
  uint64_t seed = 0;
  std::string dtype = "keep";      // keep | f32 | bf16 | f16
  bool carry_optimizer = false;    // copy the dense Adam moments into every expert
  uint64_t max_shard_bytes = 5000000000;  // 5GB, as the CLI and HF say it
};

UpcycleStrategy upcycle_strategy_parse(const std::string& s);  // throws listing the choices

// moe upcycle's request, whatever the family (cli/cmd_upcycle.cpp fills it and hands it
// to the dense checkpoint's family, Arch::upcycle).
struct UpcycleRequest {
  std::string from;        // the dense checkpoint or run directory, as given
  std::string dense_dir;   // resolved to a model directory
  std::string out;
  UpcycleOptions opt;      // checked against each other unless check_only
  bool dry_run = false, json = false, force = false, no_check = false, check_only = false;
  // The step-0 batch: sequences, tokens, and the dataset it comes from ("" random
  // tokens), found when the check runs (--check-data, or the dense run's dataset).
  int check_batch = 4, check_seq = 128;
  std::function<std::string()> check_data;
  // Encoder-decoders: the encoder's routing ("expert-choice" or "top-k") and capacity.
  std::string encoder_routing = "expert-choice";
  float encoder_capacity = 2.0f;
};

// What the options ask that the dense model does not allow (a usage error, exit 2):
// thrown by the families' plans, distinct from a broken checkpoint's runtime_error.
struct UpcyclePlanError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace moe
