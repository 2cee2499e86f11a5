// Sparse upcycling of T5 (the paper's language models): the MLPs of the chosen layers,
// in both stacks, become E experts made from the dense MLP (expert_init.h: copy,
// noise, Drop-Upcycling, virtual-group shards) and a new router; every other tensor is
// copied. The paper's routing is the default: the encoder's experts choose their tokens
// (expert choice, capacity factor 2, each sequence a group) and the decoder's tokens
// choose their top-2, renormalised. The dense model is read whole (T5 sizes here fit in
// memory; the decoder families' upcycler streams).
//
// Step 0: with renormalised top-k and copied experts a layer computes the dense MLP
// exactly; with expert choice it computes m(x) MLP(x), m(x) the sum of the router
// probabilities of the experts that took token x (from 0, no expert took it, to 1,
// every expert did), so step 0 is not exact there. t5_step0_check measures it.
#pragma once
#include <string>

#include "model/lm.h"
#include "model/t5/t5.h"
#include "upcycle/step0.h"
#include "upcycle/options.h"

namespace moe {

struct T5UpcycleOptions {
  UpcycleOptions base;                  // experts, top-k (the decoder's), combine, layers, strategy, router, ...
  bool encoder_expert_choice = true;    // false: the encoder's tokens choose too (top-k)
  float encoder_capacity_factor = 2.0f; // expert choice: each expert takes ceil(cf T / E) tokens of a sequence
};

// The MoE config made from the dense one; throws std::invalid_argument naming the option.
ModelConfig t5_upcycled_config(const ModelConfig& dense, const T5UpcycleOptions& o);
// Fills moe's parameters (moe.config() = t5_upcycled_config(dense.config(), o)).
void t5_upcycle_weights(const T5Model& dense, T5Model& moe, const T5UpcycleOptions& o);
// dense_dir (a model or run directory) -> out, written atomically (temp directory,
// renamed into place), with the tokenizer and upcycling.json (provenance). Returns the
// dense directory read.
std::string t5_upcycle(const std::string& dense_dir, const std::string& out, const T5UpcycleOptions& o, bool force);

// The step-0 check on one batch (evaluation routing): per MoE layer the block and the
// dense MLP on the dense model's input, the residual streams, both losses.
Step0Report t5_step0_check(T5Model& dense, T5Model& moe, const TokenBatch& b);

}  // namespace moe
