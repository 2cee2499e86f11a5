// Text generation with a key/value cache: the prompt is run once, then one token at
// a time attends to the cached keys and values of every earlier position.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/model.h"

namespace moe {

struct SampleOptions {
  int max_tokens = 200;
  float temperature = 0.8f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // nucleus; 1: off
  uint64_t seed = 0;
  int stop_token = -1;       // e.g. eos; -1: none
  float repetition_penalty = 1.0f;  // > 1: logits of tokens already in the sequence are divided by it when
                                    // positive, multiplied when negative (Keskar et al. 2019, CTRL); 1: off
};

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

// Picks the next token from logits (V) with the options; rng state in *state.
int32_t sample_token(const std::vector<float>& logits, const SampleOptions& o, uint64_t* state);

// The sampling loop of generate() over any incremental forward: feed(tokens) runs them
// at the next positions and returns the last one's logits (V); room() says whether
// another position fits. `first` is fed first (and counts for the repetition penalty).
std::vector<int32_t> sample_with(const std::function<const std::vector<float>&(const std::vector<int32_t>&)>& feed,
                                 const std::function<bool()>& room, const std::vector<int32_t>& first, int V,
                                 const SampleOptions& o, const std::function<bool(int32_t)>& on_token);

// prompt (non-empty) -> generated tokens (prompt excluded). on_token is called
// after each token (for streaming); returning false stops early.
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const SampleOptions& o,
                              const std::function<bool(int32_t)>& on_token = {});

}  // namespace moe
