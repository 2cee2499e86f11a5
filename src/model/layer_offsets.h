#pragma once
#include <cstddef>

namespace moe {

// Offsets (in floats) of one transformer layer's tensors (decoder layers; T5 blocks
// add their cross-attention) in the flat buffers; npos when absent.
struct LayerOffsets {
  static constexpr size_t npos = size_t(-1);
  size_t norm1 = npos, norm1_b = npos, qkv = npos, qkv_b = npos, q = npos, k = npos, v = npos, o = npos,
         o_b = npos, norm2 = npos, norm2_b = npos, up = npos, up_b = npos, gate = npos, down = npos,
         down_b = npos;
  // MoE layers: router (E,C) and experts [E, ...] instead of up/gate/down.
  size_t router = npos, ew1 = npos, eb1 = npos, ew3 = npos, ew2 = npos, eb2 = npos;
};

}  // namespace moe
