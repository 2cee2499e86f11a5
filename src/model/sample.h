// Sampling a token from logits, and the sampling loop over any incremental forward:
// shared by the families' generation (model/decoder/generate.h, model/t5/t5_generate.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

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

// Picks the next token from logits (V) with the options; rng state in *state.
int32_t sample_token(const std::vector<float>& logits, const SampleOptions& o, uint64_t* state);

// The sampling loop of generate() over any incremental forward: feed(tokens) runs them
// at the next positions and returns the last one's logits (V); room() says whether
// another position fits. `first` is fed first (and counts for the repetition penalty).
std::vector<int32_t> sample_with(const std::function<const std::vector<float>&(const std::vector<int32_t>&)>& feed,
                                 const std::function<bool()>& room, const std::vector<int32_t>& first, int V,
                                 const SampleOptions& o, const std::function<bool(int32_t)>& on_token);

}  // namespace moe
