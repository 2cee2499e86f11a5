// Sparse upcycling: a dense checkpoint directory becomes an MoE checkpoint directory.
// Every dense tensor is copied, except that the MLP of the chosen layers becomes E
// experts made from it (expert_init.h) and a new router. A Llama-family checkpoint
// becomes a Mixtral directory, a GPT-2 one the GPT-2 MoE layout (docs/formats.md).
//
// Streaming: the dense files are memory-mapped; the output is planned first (names,
// shapes, dtypes, shards) and written tensor by tensor, each one produced from the
// mapping and its pages released after use, so memory does not grow with the model.
// Loud and safe: shapes are checked against the dense config.json, every dense tensor
// must be consumed (or the plan fails naming the leftovers), and the output directory
// appears atomically (temp directory, fsync, rename) or not at all.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

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

class Upcycler {
 public:
  // Reads and checks the dense checkpoint (a model dir, or a run dir: its newest
  // checkpoint) and plans the output. Throws one line naming the file, tensor or
  // option and what was expected.
  Upcycler(const std::string& dense, const UpcycleOptions& opt);
  ~Upcycler();

  const std::string& dense_dir() const;
  const ModelConfig& dense_config() const;
  const ModelConfig& moe_config() const;
  // The plan: tensors, shapes, dtypes and where each comes from; totals.
  nlohmann::ordered_json plan_json() const;
  std::string plan_text(bool list_tensors = true) const;
  // Whether step 0 computes the dense function exactly (and why not, when not).
  std::string exactness() const;

  // Writes the MoE checkpoint to out_dir (refused when it exists unless `replace`).
  void write(const std::string& out_dir, bool replace = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

UpcycleStrategy upcycle_strategy_parse(const std::string& s);  // throws listing the choices

}  // namespace moe
