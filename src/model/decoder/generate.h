// Text generation with a key/value cache: the prompt is run once, then one token at
// a time attends to the cached keys and values of every earlier position.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/decoder/model.h"
#include "model/sample.h"

namespace moe {


// Incremental forward of one sequence with a KV cache (fp32, inference only).
class Decoder {
 public:
  explicit Decoder(const Model& m);
  // Runs `tokens` at the next positions and returns the logits (V) of the last one.
  // Throws when the sequence would exceed the model's positions.
  const std::vector<float>& feed(const std::vector<int32_t>& tokens);
  int length() const { return len_; }

 private:
  const Model& m_;
  int len_ = 0;
  std::vector<std::vector<float>> kc_, vc_;  // per layer: (n_ctx, Hkv*D)
  std::vector<float> logits_;
  std::vector<std::unique_ptr<MoeBlock>> moe_;  // MoE layers: blocks at the evaluation capacity factor
};

// prompt (non-empty) -> generated tokens (prompt excluded). on_token is called
// after each token (for streaming); returning false stops early.
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const SampleOptions& o,
                              const std::function<bool(int32_t)>& on_token = {});

}  // namespace moe
