// The MoE router (fp32 whatever the compute dtype): logits, softmax, top-k or expert
// choice with capacity (moe_route, shared with the reference), the data-parallel
// admission over the global batch, and the router's backward (combine weights, the
// aux loss through P, softmax, z loss, jitter).
#include "moe/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "moe/block_util.h"
#include "ops/dropout.h"
#include "ops/matmul.h"
#include "ops/vecmath.h"

namespace moe {

int MoeSpec::capacity(int N) const {
  if (group > 0) N = std::min(N, group);  // per group
  if (fixed_capacity > 0) return expert_choice ? std::min(N, fixed_capacity) : fixed_capacity;
  if (capacity_factor <= 0) return expert_choice ? N : INT_MAX;
  if (expert_choice) return std::min(N, int(std::ceil(double(capacity_factor) * N / E - 1e-9)));
  return int(std::ceil(double(capacity_factor) * K * N / E - 1e-9));
}

namespace {
// Expert choice: pair (n, e) for every token and expert; expert e keeps its top-capacity tokens.
template <typename S>
void route_expert_choice(MoeRouting& r, const S* probs, int N, const MoeSpec& spec) {
  const int E = spec.E, G = spec.group > 0 ? spec.group : N;
  if (N % G != 0)
    throw std::invalid_argument("moe: expert choice over groups of " + std::to_string(G) + " tokens: " +
                                std::to_string(N) + " tokens are not whole groups");
  std::vector<int> order(G);
  for (int n = 0; n < N; n++)
    for (int e = 0; e < E; e++) {
      r.choice[size_t(n) * E + e] = e;
      r.weight[size_t(n) * E + e] = double(probs[size_t(n) * E + e]);
    }
  for (int g0 = 0; g0 < N; g0 += G)
    for (int e = 0; e < E; e++) {
      for (int i = 0; i < G; i++) order[i] = g0 + i;
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return probs[size_t(a) * E + e] > probs[size_t(b) * E + e]; });
      for (int i = 0; i < r.capacity; i++) r.kept[size_t(order[i]) * E + e] = 1;
      r.counts[e] += r.capacity;
    }
}
}  // namespace

int MoeRouting::dropped() const {
  int d = 0;
  for (uint8_t k : kept) d += k == 0;
  return d;
}

template <typename S>
void moe_route(MoeRouting& r, const S* probs, int N, const MoeSpec& spec) {
  const int E = spec.E, K = spec.K;
  if (K < 1 || K > E) throw std::invalid_argument("moe: top-k " + std::to_string(K) + " must be in [1, E=" + std::to_string(E) + "]");
  r.N = N, r.K = K, r.E = E, r.capacity = spec.capacity(N);
  r.choice.assign(size_t(N) * K, -1);
  r.kept.assign(size_t(N) * K, 0);
  r.weight.assign(size_t(N) * K, 0.0);
  r.counts.assign(E, 0);
  if (spec.expert_choice) {
    if (K != E) throw std::invalid_argument("moe: expert-choice routing needs K == E");
    route_expert_choice(r, probs, N, spec);
    return;
  }
  for (int n = 0; n < N; n++) {
    const S* p = probs + size_t(n) * E;
    int32_t* ch = &r.choice[size_t(n) * K];
    double sum = 0;
    for (int k = 0; k < K; k++) {  // the k-th largest; strict > keeps the lower id on ties
      int best = -1;
      for (int e = 0; e < E; e++) {
        bool taken = false;
        for (int j = 0; j < k; j++) taken |= ch[j] == e;
        if (!taken && (best < 0 || p[e] > p[best])) best = e;
      }
      ch[k] = best;
      sum += double(p[best]);
    }
    for (int k = 0; k < K; k++)
      r.weight[size_t(n) * K + k] = spec.renormalize ? double(p[ch[k]]) / sum : double(p[ch[k]]);
  }
  // Choice-major, token order, within each group (the batch, or spec.group tokens).
  const int G = spec.group > 0 ? spec.group : N;
  if (N % G != 0)
    throw std::invalid_argument("moe: routing over groups of " + std::to_string(G) + " tokens: " + std::to_string(N) +
                                " tokens are not whole groups");
  std::vector<int> in_group(E);
  for (int g0 = 0; g0 < N; g0 += G) {
    std::fill(in_group.begin(), in_group.end(), 0);
    for (int k = 0; k < K; k++)
      for (int n = g0; n < g0 + G; n++) {
        const int e = r.choice[size_t(n) * K + k];
        if (in_group[e] < r.capacity) r.kept[size_t(n) * K + k] = 1, in_group[e]++, r.counts[e]++;
      }
  }
}

template void moe_route<float>(MoeRouting&, const float*, int, const MoeSpec&);
template void moe_route<double>(MoeRouting&, const double*, int, const MoeSpec&);

double MoeBlock::router_entropy() const { return entropy_; }

// Data-parallel routing: every rank's choices are gathered (token order = rank order),
// and the choice-major admission runs over the global batch on every rank, which then
// keeps its own slice. O(N K P) integers: small next to the experts' GEMMs.
void MoeBlock::route_global(int N) {
  const MoeSpec& sp = spec_;
  const int E = sp.E, K = sp.K, P = group_->size(), me = group_->rank();
  const size_t NK = size_t(N) * K, Ng = size_t(N) * P;
  std::vector<int32_t> all(NK * P);
  group_->allgather(r_.choice.data(), NK * sizeof(int32_t), all.data());
  const int cap = sp.capacity(int(Ng));
  r_.capacity = cap;
  std::fill(r_.kept.begin(), r_.kept.end(), 0);
  std::fill(r_.counts.begin(), r_.counts.end(), 0);
  g_counts_.assign(E, 0);
  for (int k = 0; k < K; k++)  // choice-major, global token order
    for (size_t n = 0; n < Ng; n++) {
      const int e = all[n * K + k];
      if (g_counts_[e] >= cap) continue;
      g_counts_[e]++;
      if (n / size_t(N) == size_t(me)) {
        r_.kept[(n % size_t(N)) * K + k] = 1;
        r_.counts[e]++;
      }
    }
  g_chosen_.assign(E, 0);
  for (int32_t e : all) g_chosen_[e]++;
}


void MoeBlock::route(const float* x, int N, const MoeWeights<float>& w) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E;
  const bool grouped = group_ && group_->size() > 1;
  // Router in fp32 whatever the compute dtype (selective precision).
  logits_.resize(size_t(N) * E);
  probs_.resize(size_t(N) * E);
  const float* xr = x;
  if (sp.jitter > 0) {  // the router's input only: x * U[1-j, 1+j]
    xr_.resize(size_t(N) * C);
    const uint64_t first = uint64_t(sp.token_offset) * C;  // global element index
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < size_t(N) * C; i++)
      xr_[i] = x[i] * (1.0f + sp.jitter * (2.0f * dropout_uniform(sp.noise_seed, first + i) - 1.0f));
    xr = xr_.data();
  }
  matmul(logits_.data(), xr, w.router, N, E, C, false, true, false);
  lse_.resize(N);
  std::vector<double>& lse = lse_;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* l = logits_.data() + size_t(n) * E;
    float* p = probs_.data() + size_t(n) * E;
    float mx = -INFINITY;
    for (int e = 0; e < E; e++) mx = l[e] > mx ? l[e] : mx;
    double s = 0;
    for (int e = 0; e < E; e++) s += (p[e] = vexp(l[e] - mx));
    for (int e = 0; e < E; e++) p[e] = float(p[e] / s);
    lse[n] = mx + std::log(s);
  }
  if (grouped && (sp.expert_choice || sp.group > 0))
    throw std::invalid_argument("moe: expert-choice and per-sequence routing are not data-parallel here");
  moe_route(r_, probs_.data(), N, sp);
  if (grouped) route_global(N);
}

void MoeBlock::router_backward(float* dx, MoeGrads<float>& g, const float* x, const MoeWeights<float>& w,
                               float dloss_scale) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K, N = N_;
  const std::vector<float>& dweight = dweight_;
  // Router backward (fp32): combine weights, aux through P, softmax, z.
  const std::vector<double>& f = f_;  // global when grouped: d aux / d p = coef E f_e / N_global
  std::vector<float>& dlogits = dlogits_;
  dlogits.resize(size_t(N) * E);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* p = &probs_[size_t(n) * E];
    std::vector<double> dp(E);
    for (int e = 0; e < E; e++) dp[e] = dloss_scale * double(sp.aux_coef) * E * f[e] / N;
    double sum = 0;
    for (int k = 0; k < K; k++) sum += p[r_.choice[size_t(n) * K + k]];
    for (int k = 0; k < K; k++) {
      const int e = r_.choice[size_t(n) * K + k];
      if (!sp.renormalize) {
        dp[e] += dweight[size_t(n) * K + k];
      } else {
        for (int j = 0; j < K; j++)
          dp[e] += dweight[size_t(n) * K + j] * ((j == k ? 1.0 : 0.0) - r_.weight[size_t(n) * K + j]) / sum;
      }
    }
    double dot = 0;
    for (int e = 0; e < E; e++) dot += p[e] * dp[e];
    const double lse = lse_[n];
    for (int e = 0; e < E; e++)
      dlogits[size_t(n) * E + e] =
          float(p[e] * (dp[e] - dot) + dloss_scale * double(sp.z_coef) * 2.0 * lse * p[e] / N);
  }
  const bool jit = sp.jitter > 0;
  matmul(g.router, dlogits.data(), jit ? xr_.data() : x, E, C, N, true, false, true);  // dWr += dlogits^T xr
  matmul(dx, dlogits.data(), w.router, N, C, E, false, false, false);                 // dx = dlogits Wr
  if (jit) {  // d xr / d x = the jitter factor
    const uint64_t first = uint64_t(sp.token_offset) * C;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < size_t(N) * C; i++)
      dx[i] *= 1.0f + sp.jitter * (2.0f * dropout_uniform(sp.noise_seed, first + i) - 1.0f);
  }
}

}  // namespace moe
