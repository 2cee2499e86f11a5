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
#include "upcycle/options.h"

namespace moe {

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


}  // namespace moe
