// The step-0 check of an upcycled checkpoint: dense and MoE models run on the same
// held-out batch, one layer at a time (each layer's weights are loaded, run and
// freed, so a model that does not fit in memory in float32 can still be checked).
// Per upcycled layer: the MoE block and the dense MLP receive the same input (the
// dense model's residual stream) and their outputs are compared; both models also
// run on their own residual streams to the end, for both losses.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe {

struct Step0Layer {
  int layer = 0;
  bool moe = false;
  double block_max_diff = 0;   // max |MoE block - dense MLP| on the same input (MoE layers)
  double mlp_max_abs = 0;      // max |dense MLP output|, the scale of the above
  double scale = 1;            // least-squares factor s in MoE ~ s * dense (1: same; Switch top-1: ~ gate)
  double gate_mass = 1;        // mean over tokens of the kept combine weights (1 renormalised)
  double drop_fraction = 0;    // (token, choice) pairs over capacity
  double hidden_max_diff = 0;  // max |residual stream difference| after this layer (both models on their own)
  double untaken = 0;          // expert choice: fraction of tokens no expert took (their MLP output is 0)
  std::string note;            // why this layer is not exact at step 0, when it is not (printed under the table)
};

struct Step0Report {
  int B = 0, T = 0;
  std::string batch;           // where the tokens came from
  double dense_loss = 0, moe_loss = 0;
  std::vector<Step0Layer> layers;
  nlohmann::ordered_json to_json() const;
  std::string text() const;
};

// inputs, targets: (B, T) token ids (a held-out batch).
Step0Report step0_check(const std::string& dense_dir, const std::string& moe_dir, const std::vector<int32_t>& inputs,
                        const std::vector<int32_t>& targets, int B, int T);

}  // namespace moe
