// Model arithmetic: parameters (total and active per token) and training FLOPs.
#pragma once
#include "model/model.h"

namespace moe {

// Parameters of a config's model (no allocation). Active per token: everything but
// the experts a token does not use (E - K of E in every MoE layer).
struct ParamCounts {
  size_t total = 0, active = 0;
};
ParamCounts model_param_counts(const ModelConfig& c);

// Matmul parameters (every 2-D weight used as a linear, the lm_head and MoE routers
// included; embedding lookups excluded; of the [E, ...] expert weights, the K experts
// a token uses) times 6, plus 12 L T C.
double model_train_flops_per_token(const Model& m, int T);
// T5: the training FLOPs of a row of Te encoder and Td decoder tokens, per token of the row.
double t5_train_flops_per_token(const ModelConfig& c, int Te, int Td);

}  // namespace moe
