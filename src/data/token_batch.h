#pragma once
#include <cstdint>
#include <vector>

namespace moe {

// One batch of token ids. Decoder-only (Td == 0): inputs and targets (B,T), the targets
// the inputs shifted by one. Encoder-decoder (Td > 0): inputs (B,T) for the encoder,
// dec (B,Td) the decoder inputs and targets (B,Td). Targets -1 are ignored.
struct TokenBatch {
  int B = 0, T = 0, Td = 0;
  std::vector<int32_t> inputs, dec, targets;
  int target_len() const { return Td > 0 ? Td : T; }
  // Tokens a forward reads (the run's token count): B T, or B (T + Td).
  uint64_t tokens() const { return uint64_t(B) * uint64_t(T + Td); }
  void resize(int b, int t, int td) {
    B = b, T = t, Td = td;
    inputs.resize(size_t(b) * t);
    dec.resize(size_t(b) * td);
    targets.resize(size_t(b) * (td > 0 ? td : t));
  }
};

}  // namespace moe
