// Model arithmetic: parameters (total and active per token), from the family's hooks
// (model/arch.h); training FLOPs per token are LanguageModel::train_flops_per_token.
#pragma once
#include "model/arch.h"

namespace moe {

ParamCounts model_param_counts(const ModelConfig& c);

}  // namespace moe
