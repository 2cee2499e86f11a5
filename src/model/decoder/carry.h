// Optimizer carry-over for upcycling: the dense run's AdamW moments become the MoE
// run's (every expert gets its shard of the dense MLP's moments, dropped units and
// routers start at zero), written as out_dir/optimizer.safetensors in the training
// checkpoint format (train/state.h), with the dense step for Adam's bias correction.
#pragma once
#include <functional>
#include <string>

#include "model/config.h"
#include "upcycle/expert_init.h"

namespace moe {

// Throws naming the file when dense_dir has no optimizer.safetensors or it does not
// match the dense config.
void upcycle_optimizer(const std::string& dense_dir, const ModelConfig& dense, const ModelConfig& moe_cfg,
                       const std::function<ExpertRecipe(int layer)>& recipe, const std::string& out_dir);

}  // namespace moe
