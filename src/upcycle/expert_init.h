// The arithmetic of upcycling one dense MLP into E experts, on float32 arrays in
// any orientation (the caller says which axis indexes the MLP's F intermediate
// units). Pure functions of their inputs and seed: the planner, the optimizer
// carry-over and the tests share them.
//
// Expert e is made from the dense tensor in this order:
//   1. shard   (virtual-group / granular upcycling, G > 1): expert e holds units
//              [s*F/G, (s+1)*F/G) with s = e % G; experts e / G form virtual group e / G.
//   2. drop    (Drop-Upcycling, rate r): round(r * F/G) of the expert's units, a
//              different random subset per expert, are re-initialised from N(mean, std)
//              of the whole dense tensor (every MLP tensor of the expert uses the same subset).
//   3. noise   x += N(0, (noise * std)^2), std of the whole dense tensor.
//   4. scale   the down projection times `scale`, its bias times `bias_scale`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/family.h"

namespace moe {

// Which part of the MLP a tensor is: its unit axis and what applies to it.
enum class MlpPart {
  In,       // up / gate projection weight (units along unit_axis)
  InBias,   // up projection bias (1-D, units)
  Out,      // down projection weight (units along unit_axis): scaled
  OutBias,  // down projection bias (1-D, model width): scaled by bias_scale, not sharded
};

// The dense MLP role an expert role is made from, and which part of the MLP it is
// (SwiGLU: w1 <- gate, w3 <- up; GELU: w1 <- up, b1 <- up bias; w2 <- down, b2 <- down
// bias). Any other role is its own source (part untouched).
Role expert_source_role(Role r, MlpKind mlp, MlpPart* part);

struct ExpertRecipe {
  int E = 8;               // experts
  int G = 1;               // granularity: shards of the F units
  int F = 0;               // dense MLP width (a multiple of G)
  float scale = 1.0f;      // down projection multiplier
  float bias_scale = 1.0f; // down projection bias multiplier
  float noise = 0.0f;      // noise std relative to each dense tensor's std
  float drop_rate = 0.0f;  // fraction of each expert's units re-initialised
  uint64_t seed = 0;       // with the layer, selects every random draw
  int layer = 0;
  int expert_width() const { return F / G; }
};

struct TensorStats {
  double mean = 0, std = 0;
};
TensorStats tensor_stats(const float* x, size_t n);

// The expert's units re-initialised by Drop-Upcycling: exactly round(drop_rate * F/G)
// indices in [0, F/G), sorted, a different random subset per (seed, layer, expert).
std::vector<int> drop_units(const ExpertRecipe& r, int e);

// Expert e's tensor. dense: rows x cols row-major (1-D tensors: rows = n, cols = 1,
// unit_axis 0). unit_axis: 0 or 1 (the axis of length F), ignored for OutBias.
// out receives the expert's tensor (the unit axis has F/G entries). salt separates
// the random streams of the tensors of one expert (noise, re-init values).
void make_expert(const ExpertRecipe& r, MlpPart part, int unit_axis, const float* dense, int64_t rows, int64_t cols,
                 const TensorStats& st, int e, uint64_t salt, float* out);

// The same shard of an optimizer moment (Adam m or v): sharded like the weight,
// dropped units zeroed, no noise, no scaling.
void expert_moment(const ExpertRecipe& r, MlpPart part, int unit_axis, const float* dense, int64_t rows,
                   int64_t cols, int e, float* out);

// Router (E, C): N(0, std^2) with one row per virtual group (the G experts of a group
// share it, so top-k with k a multiple of G picks whole groups), or zeros (std = 0).
std::vector<float> router_init(int E, int G, int C, float std, uint64_t seed, int layer);

}  // namespace moe
