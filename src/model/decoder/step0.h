// The decoder families' step-0 check of an upcycled checkpoint: dense and MoE models
// run on the same held-out batch, one layer at a time (each layer's weights are loaded,
// run and freed, so a model that does not fit in memory in float32 can still be
// checked). Per upcycled layer: the MoE block and the dense MLP receive the same input
// (the dense model's residual stream) and their outputs are compared; both models also
// run on their own residual streams to the end, for both losses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "upcycle/step0.h"

namespace moe {

// inputs, targets: (B, T) token ids (a held-out batch).
Step0Report step0_check(const std::string& dense_dir, const std::string& moe_dir, const std::vector<int32_t>& inputs,
                        const std::vector<int32_t>& targets, int B, int T);

}  // namespace moe
