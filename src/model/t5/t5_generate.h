// T5 decoding: the encoder runs once over the input; the decoder then runs one token
// at a time with a key/value cache of its self-attention and the cross-attention's
// keys and values computed once from the encoder output. The logits equal those of
// T5Model's teacher-forced forward at every position (tested).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/sample.h"
#include "model/t5/t5.h"

namespace moe {

class T5Decoder {
 public:
  // Runs the encoder over `input` (1 sequence; T5 inputs end with eos). Throws when it
  // is empty or longer than the model's positions.
  T5Decoder(T5Model& m, const std::vector<int32_t>& input);
  // Runs `tokens` at the decoder's next positions (the first one is the decoder start
  // token) and returns the logits (V) of the last one.
  const std::vector<float>& feed(const std::vector<int32_t>& tokens);
  int length() const { return len_; }

 private:
  T5Model& m_;
  int len_ = 0, Te_ = 0;
  std::vector<float> enc_;                   // (Te, C): the encoder's output
  std::vector<std::vector<float>> kc_, vc_;  // per decoder layer: (n_ctx, H*D) self-attention cache
  std::vector<std::vector<float>> xk_, xv_;  // per decoder layer: (Te, H*D) cross-attention keys, values
  std::vector<float> logits_;
  std::vector<std::unique_ptr<MoeBlock>> moe_;  // decoder MoE layers: blocks at the evaluation capacity factor
};

// Decodes from the decoder start token until eos (o.stop_token), o.max_tokens or the
// model's positions; on_token as in generate(). The output excludes the start token.
std::vector<int32_t> t5_generate(T5Model& m, const std::vector<int32_t>& input, const SampleOptions& o,
                                 const std::function<bool(int32_t)>& on_token = {});

// Where a span-filling answer ends: T5's targets are "<extra_id_0> span ... <extra_id_k>
// span" for a prompt whose last sentinel is k, then eos. So the answer has ended at eos,
// at pad (the decoder start, never a target), and at any sentinel after the prompt's last
// (a model that goes on invents new spans). Sentinel n is id V - 1 - n; ids below
// `pieces` are text. last_sentinel: the prompt's highest n, -1 when it has none.
bool t5_answer_ended(int32_t token, int eos, int pad, int V, int pieces, int last_sentinel);
// The prompt's highest sentinel index in its ids (-1: none).
int t5_last_sentinel(const std::vector<int32_t>& input, int V, int pieces);

}  // namespace moe
