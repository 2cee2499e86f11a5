// A Mixture-of-Experts block (Switch Transformer / Mixtral), replacing a dense MLP:
//
//   router:   logits (N,E) = x (N,C) · Wr^T, Wr (E,C), always in fp32; p = softmax(logits)
//   choose:   tokens choose their top-K experts by p (ties: the lower expert id)
//   weights:  raw p (Switch) or renormalised over the chosen K: p / sum_chosen p (Mixtral)
//   capacity: each expert takes at most ceil(cf * K * N / E) (token, choice) pairs; pairs
//             are admitted choice-major (every token's first choice in token order,
//             then every second choice, ...; GShard's priority). A pair over capacity is
//             dropped: it contributes nothing (the token flows on through the residual).
//             cf <= 0: dropless (no capacity).
//   experts:  expert e is the family's MLP with its own weights, stored [E, ...]:
//             Gelu:   y = W2_e gelu(W1_e x + b1_e) + b2_e        W1 (E,F,C) W2 (E,C,F)
//             SwiGLU: y = W2_e (silu(W1_e x) * (W3_e x))         W1 = gate, W3 = up, W2 = down
//             Relu:   y = W2_e relu(W1_e x)                      (T5: wi, wo)
//             GeGLU:  y = W2_e (gelu(W1_e x) * (W3_e x))         (T5 v1.1: wi_0, wi_1, wo)
//   combine:  out[n] = sum over kept choices of weight * y_expert(x[n])
//   losses:   aux = aux_coef * E * sum_e f_e P_e, f_e = (chosen pairs for e before
//             dropping) / (N K), P_e = mean_n p[n,e] (Switch; for K > 1 f counts every
//             choice, normalised so that sum f = 1: the balanced value is aux_coef);
//             z = z_coef * mean_n logsumexp(logits[n])^2 (ST-MoE).
//
// Expert-choice routing (Zhou et al. 2022; expert_choice = true, K must equal E): each
// expert takes the ceil(cf * N / E) tokens with the highest p[n, e] (ties: the lower
// token index) of each group of N tokens (the batch, or MoeSpec::group consecutive
// tokens); a token may be taken by any number of experts, with weight p[n, e].
// It is represented as K = E pairs per token (pair (n, e) kept when e took n), so the
// same reference and fast paths run it. A token's routing depends on the other tokens
// of the batch, later ones included: fine for encoders and vision models, wrong for a
// causal decoder, which refuses it (ModelConfig::validate).
//
// Gradients flow to x through the experts and the router, to the router through the
// combine weights, aux (through P only: f is a count) and z. The routing decisions
// are piecewise constant, so finite differences hold away from ties.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/comm.h"
#include "moe/mlp_kind.h"
#include "tensor/dtype.h"

namespace moe {

// Experts with a third matrix W3 (the gated MLPs).
inline bool moe_gated(MlpKind k) { return k == MlpKind::SwiGLU || k == MlpKind::GeGLU; }

struct MoeSpec {
  int C = 0, F = 0, E = 0, K = 1;
  MlpKind mlp = MlpKind::SwiGLU;
  bool bias = false;             // b1, b2 (GPT-2 experts)
  float capacity_factor = 1.25f; // <= 0: dropless
  bool renormalize = true;       // Mixtral combine; false: Switch raw gates
  bool expert_choice = false;    // experts choose tokens (K == E, raw weights); see above
  // Routing over groups of `group` consecutive tokens (each sequence: T5's expert-choice
  // encoder, and HF switch_transformers, whose capacity counts per sequence), each group
  // with its own capacity: expert choice takes ceil(cf * group / E) of every group,
  // tokens choose admit choice-major in token order within the group; 0: the whole
  // batch is one group.
  int group = 0;
  // > 0: the capacity of each expert per group, whatever the capacity factor (HF
  // switch_transformers' absolute expert_capacity).
  int fixed_capacity = 0;
  float aux_coef = 0.01f, z_coef = 1e-3f;
  // Training-time noise (0: off), deterministic in noise_seed:
  //   router jitter: the router sees x * u, u ~ U[1-jitter, 1+jitter] per element
  //     (element i of x draws dropout_uniform(noise_seed, i));
  //   expert dropout: each expert hidden unit of pair (n,k) is dropped with this rate
  //     (element (n*K+k)*F + f draws dropout_uniform(noise_seed ^ 1, ...)), the kept
  //     ones scaled by 1/(1-rate) (Switch's higher dropout inside experts).
  float jitter = 0.0f, expert_dropout = 0.0f;
  uint64_t noise_seed = 0;
  // The global index of the block's first token (data parallelism: rank r's rows start
  // at r N): the masks above are drawn by global index i + token_offset C and pair
  // (token_offset + n) K + k, so every rank draws its part of the one-process masks.
  int64_t token_offset = 0;
  int capacity(int N) const;     // INT32_MAX when dropless; expert choice: per group
};

template <typename S>
struct MoeWeights {
  const S* router = nullptr;  // (E,C)
  const S *w1 = nullptr, *b1 = nullptr, *w3 = nullptr, *w2 = nullptr, *b2 = nullptr;
};
template <typename S>
struct MoeGrads {
  S* router = nullptr;
  S *w1 = nullptr, *b1 = nullptr, *w3 = nullptr, *w2 = nullptr, *b2 = nullptr;
};

// The decisions of one forward.
struct MoeRouting {
  int N = 0, K = 0, E = 0, capacity = 0;
  std::vector<int32_t> choice;  // (N,K) expert chosen, before capacity
  std::vector<uint8_t> kept;    // (N,K)
  std::vector<double> weight;   // (N,K) combine weight as computed (also for dropped pairs)
  std::vector<int32_t> counts;  // (E) kept pairs per expert
  int dropped() const;
};

struct MoeLosses {
  double aux = 0, z = 0;  // already multiplied by their coefficients
};

// Routing shared by both paths: top-K, weights, capacity. probs (N,E).
template <typename S>
void moe_route(MoeRouting& r, const S* probs, int N, const MoeSpec& spec);

// ------------------------------------------------------------ reference (per token)
// out (N,C) assigned. Returns the routing and the losses.
template <typename S>
void moe_forward_ref(S* out, MoeRouting& r, MoeLosses& l, const S* x, int N, const MoeSpec& spec,
                     const MoeWeights<S>& w);
// dx (N,C) assigned; parameter gradients accumulate. dloss_scale multiplies the aux
// and z losses' gradients (the weight of the block's losses in the total loss).
template <typename S>
void moe_backward_ref(S* dx, MoeGrads<S>& g, const S* dout, const S* x, int N, const MoeSpec& spec,
                      const MoeWeights<S>& w, const MoeRouting& r, double dloss_scale);

// ------------------------------------------------------------ fast (grouped GEMMs)
// Keeps what its backward needs. Rows of the kept (token, choice) pairs are gathered
// so each expert's rows are contiguous, each expert runs as GEMMs (oneDNN; bf16
// operands when bf16 weights are given), and the outputs are scattered back weighted.
class MoeBlock {
 public:
  explicit MoeBlock(const MoeSpec& spec) : spec_(spec), El_(spec.E) {}
  const MoeSpec& spec() const { return spec_; }
  void set_capacity_factor(float cf) { spec_.capacity_factor = cf; }  // training vs evaluation
  void set_choice_group(int tokens) { spec_.group = tokens; }           // expert choice's groups (MoeSpec::group)
  // Training noise for the next forward (zeros: none, as in evaluation).
  void set_noise(float jitter, float expert_dropout, uint64_t seed, int64_t token_offset = 0) {
    spec_.jitter = jitter, spec_.expert_dropout = expert_dropout, spec_.noise_seed = seed;
    spec_.token_offset = token_offset;
  }
  // wbf: bf16 copies of w1, w3, w2 (null for fp32 experts). The router is fp32 always.
  void forward(float* out, const float* x, int N, const MoeWeights<float>& w, const MoeWeights<bf16>* wbf = nullptr);
  void backward(float* dx, MoeGrads<float>& g, const float* dout, const float* x, const MoeWeights<float>& w,
                float dloss_scale);
  const MoeRouting& routing() const { return r_; }
  const MoeLosses& losses() const { return l_; }
  double router_entropy() const;  // mean over tokens of -sum p log p, nats (global when grouped)

  // Data parallelism: the block's N tokens are one rank's equal share of a global batch
  // split over `group` (rank r holds global tokens [r N, (r+1) N)). Capacity, the
  // choice-major dropping order, f_e, P_e, the aux and z losses and the telemetry below
  // are then those of the global batch, as one process would compute them: the same
  // pairs are kept and dropped whatever the number of ranks. The backward's loss
  // gradients assume the caller scales the loss by 1 / group size (each rank's share of
  // the global mean). Null (or a group of one): the block's own N tokens.
  void set_group(Comm* group) { group_ = group; }
  // Expert parallelism: the E experts are split over the ranks of `ep` (rank i holds
  // experts [i E/P, (i+1) E/P), and the weights and gradients given to forward and
  // backward are that slice: [E/P, ...]). Every rank routes its own tokens (over
  // set_group's global batch); the kept rows travel to their expert's rank and back
  // with two all-to-alls in the forward (token rows, expert outputs) and two in the
  // backward (output gradients, input gradients), after an exchange of the row counts.
  // Rows go as bf16 (16-bit words) where the experts would round them to bf16 anyway
  // (bf16 compute: the forward's inputs, and the backward's output gradients when the
  // experts have no bias), else as fp32; nothing is reduced in bf16. The ranks of `ep`
  // may hold different tokens (training) or the same ones (evaluation). Null or a group
  // of one: every expert here.
  void set_expert_group(Comm* ep);
  // Of the last forward, over the global batch: kept pairs per expert, chosen pairs per
  // expert (before dropping), tokens, and dropped pairs.
  const std::vector<int64_t>& global_counts() const { return g_counts_; }
  const std::vector<int64_t>& global_chosen() const { return g_chosen_; }
  int64_t global_tokens() const { return g_tokens_; }
  int64_t global_dropped() const { return g_dropped_; }
  // Activation recomputation (moe_buffers.cpp): exchanges the large buffers of one
  // forward + backward (gathered rows, expert activations, backward scratch) with
  // `other`'s, so that blocks run one at a time share one set. The routing, the losses
  // and the router probabilities stay with the block (telemetry reads them).
  void swap_buffers(MoeBlock& other);
  size_t buffer_bytes() const;
  // Reserves every buffer for N tokens at the most rows routing can produce (kept pairs
  // plus each expert's padding), so that no step reallocates one: a reallocation frees
  // the old block, which malloc keeps (resident) once its mmap threshold has risen.
  void reserve_buffers(int N, bool backward, bool bf16);  // bytes of the block's buffers in use (sizes, not capacities)

 private:
  // The stages of forward and backward, each in its own file: router.cpp (route,
  // route_global, router_backward), losses.cpp, dispatch.cpp (dispatch, assign_rows,
  // combine, combine_backward, scatter_backward), exchange.cpp (ep_*), moe_block.cpp
  // (the experts' GEMMs).
  void route(const float* x, int N, const MoeWeights<float>& w);
  void route_global(int N);
  void losses_and_telemetry(int N, bool grouped);
  void dispatch(const float* x, int N, bool bf);
  bool combine_backward(const float* dout);  // true when the rows' bf16 output gradients are ready
  void router_backward(float* dx, MoeGrads<float>& g, const float* x, const MoeWeights<float>& w, float dloss_scale);
  void scatter_backward(float* dx);
  void experts_forward(const MoeWeights<float>& w, const MoeWeights<bf16>* wbf);
  void experts_backward(MoeGrads<float>& g, const MoeWeights<float>& w, bool dy_bf_ready);
  void plan_experts();  // order_ and parallel_experts_ from offsets_
  void assign_rows(const std::vector<int32_t>& starts, int rows, std::vector<int32_t>& row_pair,
                   std::vector<int32_t>& pair_row) const;
  void combine(float* out, int N, const std::vector<int32_t>& pair_row, const std::vector<float>& rows) const;
  // Expert parallelism (exchange.cpp).
  void ep_dispatch(const float* x, int N, bool bf);
  void ep_backward_send(const float* dout, bool bf);
  void ep_send_regroup(bool as_bf16, std::vector<float>& f32, std::vector<bf16>& half);
  void ep_return(const std::vector<float>& grouped, std::vector<float>& by_slot);
  MoeSpec spec_;
  Comm* group_ = nullptr;
  Comm* ep_ = nullptr;   // expert-parallel group (null: all experts here)
  int El_ = 0;           // experts held (E / ep size: rank i's are [i El_, (i+1) El_))
  std::vector<double> f_;  // (E) chosen fraction of the (global) pairs: the aux loss's f
  std::vector<int64_t> g_counts_, g_chosen_;
  int64_t g_tokens_ = 0, g_dropped_ = 0;
  double entropy_ = 0;
  MoeRouting r_;
  MoeLosses l_;
  int N_ = 0;
  MoeWeights<bf16> wbf_;  // a copy: the caller's struct may be gone by the backward
  bool bf_ = false;
  void apply_expert_dropout(float* h, int R, int F, int K) const;
  template <typename Fn>
  void for_each_expert(Fn&& fn) const;
  std::vector<float> logits_, probs_;    // (N,E)
  std::vector<int32_t> offsets_;         // (E+1) start of each expert's rows
  std::vector<int32_t> row_pair_;        // (R) the (n*K+k) pair of each grouped row
  std::vector<int32_t> pair_row_;        // (N*K) the grouped row of each pair, -1 when dropped
  std::vector<int> order_;               // experts by decreasing row count
  bool parallel_experts_ = false;        // one thread per expert (enough experts per thread)
  std::vector<double> lse_;              // (N) router logsumexp
  std::vector<float> xr_;                // (N,C) the router's input (x with jitter)
  std::vector<float> xg_, h1_, h3_, a_, y_;  // (R,C), (R,F), (R,F), (R,F), (R,C)
  std::vector<bf16> xg_bf_, a_bf_, d_bf_;
  std::vector<float> dy_, dweight_, da_, dh1_, dh3_, dxg_, dlogits_;  // backward scratch
  std::vector<bf16> dh1b_, dh3b_;
  // Expert parallelism: the token side sends its kept pairs expert-major ("slots");
  // the expert side receives rows from each rank, in rank order, and groups them per
  // local expert (recv_row_: the grouped row of each received row).
  std::vector<int32_t> slot_pair_, pair_slot_;  // (S) pair of each sent row; (N*K) slot or -1
  std::vector<size_t> send_rows_, recv_rows_;  // per rank of ep_
  std::vector<int32_t> recv_row_;
  std::vector<int64_t> row_gpair_;              // (R) expert dropout: the global pair of each grouped row
  std::vector<float> yret_, dxret_;             // (S,C) the experts' outputs / input gradients, slot order
  std::vector<char> send_buf_, recv_buf_;       // staging of the all-to-alls
};

}  // namespace moe
