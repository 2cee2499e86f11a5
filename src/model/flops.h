// Training FLOPs of a model: the 6N rule over matmul parameters plus attention.
#pragma once
#include "model/model.h"

namespace moe {

// Matmul parameters (every 2-D weight used as a linear, the lm_head and MoE routers
// included; embedding lookups excluded; of the [E, ...] expert weights, the K experts
// a token uses) times 6, plus 12 L T C.
double model_train_flops_per_token(const Model& m, int T);

}  // namespace moe
