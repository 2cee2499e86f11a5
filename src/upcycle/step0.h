// The step-0 report of an upcycled checkpoint, whatever the family: per upcycled
// layer, the MoE block against the dense MLP on the same input (the dense model's
// residual stream), the residual streams of both models run on their own, and both
// losses. The families' checks fill it (model/decoder/step0.h, model/t5/t5_upcycle.h).
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

}  // namespace moe
