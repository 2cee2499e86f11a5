// The fast MoE block: route, gather each expert's rows together, run every expert as
// GEMMs over its rows (no per-token loops around the maths), scatter back weighted.
// The three stages (dispatch, experts, combine) are separate loops so that expert
// parallelism can put an all-to-all between them later.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "moe/moe_layer.h"
#include "ops/bias.h"
#include "ops/dropout.h"
#include "ops/gelu.h"
#include "ops/relu.h"
#include "ops/matmul.h"
#include "ops/swiglu.h"
#include "ops/vecmath.h"

namespace moe {

namespace {

int padded(int rows) { return (rows + 15) / 16 * 16; }

// dst = src rounded to bf16 (the GEMM operand copy), resized to match.
void bf16_copy(std::vector<bf16>& dst, const std::vector<float>& src) {
  dst.resize(src.size());
  f32_to_bf16(dst.data(), src.data(), src.size());
}

// C (M,N) [+]= A (M,K) · B^T (B stored (N,K)), bf16 operands when given.
void mm_nt(float* C, const float* A, const bf16* Abf, const float* B, const bf16* Bbf, int M, int N, int K, bool acc) {
  if (Abf && Bbf) matmul_bf16(C, Abf, Bbf, M, N, K, false, true, acc);
  else matmul(C, A, B, M, N, K, false, true, acc);
}
// C (M,N) [+]= A (M,K) · B (K,N)
void mm_nn(float* C, const float* A, const bf16* Abf, const float* B, const bf16* Bbf, int M, int N, int K, bool acc) {
  if (Abf && Bbf) matmul_bf16(C, Abf, Bbf, M, N, K, false, false, acc);
  else matmul(C, A, B, M, N, K, false, false, acc);
}
// C (M,N) += A^T · B with A stored (K,M), B (K,N): a weight gradient.
void mm_tn_acc(float* C, const float* A, const bf16* Abf, const float* B, const bf16* Bbf, int M, int N, int K) {
  if (Abf && Bbf) matmul_bf16(C, Abf, Bbf, M, N, K, true, false, true);
  else matmul(C, A, B, M, N, K, true, false, true);
}

}  // namespace

// Multiplies hidden unit f of grouped row `row` by its pair's expert-dropout factor
// (the same mask in the forward and the backward, and in the reference), drawn by the
// pair's global index (row_gpair_).
void MoeBlock::apply_expert_dropout(float* h, int R, int F, int K) const {
  const float p = spec_.expert_dropout, scale = float(1.0 / (1.0 - double(p)));
  const uint64_t seed = spec_.noise_seed ^ 1;
#pragma omp parallel for schedule(static)
  for (int row = 0; row < R; row++) {
    if (row_gpair_[row] < 0) continue;  // padding row
    const uint64_t base = uint64_t(row_gpair_[row]) * uint64_t(F);
    float* hr = h + size_t(row) * F;
    for (int f = 0; f < F; f++) hr[f] = dropout_uniform(seed, base + f) >= p ? hr[f] * scale : 0.0f;
  }
  (void)K;
}

// Runs fn(expert, first row, rows) for every expert with rows. Experts in parallel,
// each GEMM on one thread (matmul runs single-threaded inside a parallel region): one
// thread per expert keeps every core in a large single-thread GEMM instead of splitting
// each ~256-row GEMM and synchronising after it. Largest groups first (LPT) so the
// threads finish together; with few experts per thread the GEMMs are threaded instead.
template <typename Fn>
void MoeBlock::for_each_expert(Fn&& fn) const {
#pragma omp parallel for schedule(dynamic, 1) if (parallel_experts_)
  for (int i = 0; i < El_; i++) {
    const int e = order_[i];
    const int o = offsets_[e], cnt = offsets_[e + 1] - offsets_[e];
    if (cnt > 0) fn(e, o, cnt);
  }
}

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


void MoeBlock::forward(float* out, const float* x, int N, const MoeWeights<float>& w, const MoeWeights<bf16>* wbf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K;
  N_ = N;
  bf_ = wbf != nullptr;
  if (wbf) wbf_ = *wbf;
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
  const bool grouped = group_ && group_->size() > 1;
  if (grouped && (sp.expert_choice || sp.group > 0))
    throw std::invalid_argument("moe: expert-choice and per-sequence routing are not data-parallel here");
  moe_route(r_, probs_.data(), N, sp);
  if (grouped) route_global(N);
  {  // losses and telemetry: sums over the tokens (of every rank when grouped)
    const int64_t Ng = int64_t(N) * (grouped ? group_->size() : 1);
    std::vector<double> sums(E + 2, 0.0);  // P_e sums, sum of lse^2, sum of entropies
    for (int n = 0; n < N; n++) {
      for (int e = 0; e < E; e++) {
        const double p = probs_[size_t(n) * E + e];
        sums[e] += p;
        if (p > 0) sums[E + 1] -= p * std::log(p);
      }
      sums[E] += lse[n] * lse[n];
    }
    if (grouped) group_->allreduce_sum(sums.data(), sums.size());
    if (!grouped) {
      g_counts_.assign(r_.counts.begin(), r_.counts.end());
      g_chosen_.assign(E, 0);
      for (int32_t e : r_.choice) g_chosen_[e]++;
    }
    g_tokens_ = Ng;
    g_dropped_ = Ng * K;
    for (int64_t c : g_counts_) g_dropped_ -= c;
    f_.assign(E, 0.0);
    for (int e = 0; e < E; e++) f_[e] = double(g_chosen_[e]) / (double(Ng) * K);
    l_.aux = 0;
    for (int e = 0; e < E; e++) l_.aux += f_[e] * sums[e] / double(Ng);
    l_.aux *= double(sp.aux_coef) * E;
    l_.z = sums[E] * double(sp.z_coef) / double(Ng);
    entropy_ = sums[E + 1] / double(Ng);
  }
  if (ep_) {  // expert parallelism: the rows travel to their experts' ranks and back
    ep_dispatch(x, N, wbf != nullptr);
    experts_forward(w, wbf);
    ep_return(y_, yret_);  // the outputs (fp32) to the tokens' ranks
    combine(out, N, pair_slot_, yret_);
    return;
  }
  // Dispatch: rows of each expert contiguous, tokens in order within an expert. Each
  // expert's group is padded with zero rows to a multiple of 16, so the GEMMs see few
  // distinct row counts (primitives are cached per shape; see matmul.cpp). Padding
  // rows have no pair (-1), get zero gradients and are never combined.
  offsets_.assign(E + 1, 0);
  for (int e = 0; e < E; e++) offsets_[e + 1] = offsets_[e] + padded(r_.counts[e]);
  const int R = offsets_[E];
  assign_rows(offsets_, R, row_pair_, pair_row_);
  if (sp.expert_dropout > 0) {
    row_gpair_.resize(R);
    for (int row = 0; row < R; row++)
      row_gpair_[row] = row_pair_[row] < 0 ? -1 : sp.token_offset * K + row_pair_[row];
  }
  plan_experts();
  xg_.resize(size_t(R) * C);
#pragma omp parallel for schedule(static)
  for (int row = 0; row < R; row++) {
    if (row_pair_[row] >= 0) std::memcpy(&xg_[size_t(row) * C], x + size_t(row_pair_[row] / K) * C, C * sizeof(float));
    else std::memset(&xg_[size_t(row) * C], 0, C * sizeof(float));
  }
  if (wbf) bf16_copy(xg_bf_, xg_);
  experts_forward(w, wbf);
  combine(out, N, pair_row_, y_);
}

// Kept pairs in expert order (each expert's in pair order, from starts[e]): row_pair
// (rows entries, -1 where none: padding) and pair_row (N K entries, -1 when dropped).
void MoeBlock::assign_rows(const std::vector<int32_t>& starts, int rows, std::vector<int32_t>& row_pair,
                           std::vector<int32_t>& pair_row) const {
  const int N = r_.N, K = spec_.K;
  row_pair.assign(rows, -1);
  pair_row.assign(size_t(N) * K, -1);
  std::vector<int32_t> fill(starts.begin(), starts.begin() + spec_.E);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      if (r_.kept[size_t(n) * K + k]) {
        const int row = fill[r_.choice[size_t(n) * K + k]]++;
        row_pair[row] = n * K + k;
        pair_row[size_t(n) * K + k] = row;
      }
}

// Each token adds its kept choices' outputs (rows[pair_row[pair]]), weighted, in choice order.
void MoeBlock::combine(float* out, int N, const std::vector<int32_t>& pair_row, const std::vector<float>& rows) const {
  const int C = spec_.C, K = spec_.K;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* o = out + size_t(n) * C;
    std::memset(o, 0, C * sizeof(float));
    for (int k = 0; k < K; k++) {
      const int row = pair_row[size_t(n) * K + k];
      if (row < 0) continue;
      const float wt = float(r_.weight[size_t(n) * K + k]);
      const float* y = &rows[size_t(row) * C];
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wt * y[c];
    }
  }
}

void MoeBlock::plan_experts() {
  order_.resize(El_);
  for (int i = 0; i < El_; i++) order_[i] = i;
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int a, int b) { return offsets_[a + 1] - offsets_[a] > offsets_[b + 1] - offsets_[b]; });
  parallel_experts_ = El_ >= 4 * omp_get_max_threads();
}

// The local experts over the grouped rows xg_ (xg_bf_ with bf16 weights: then only
// that copy is read) -> y_. Expert i's weights are w.w1 + i F C, ... (the local slice).
void MoeBlock::experts_forward(const MoeWeights<float>& w, const MoeWeights<bf16>* wbf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, F = sp.F, R = offsets_[El_];
  const bool bf = wbf != nullptr;
  const float* xg = bf ? nullptr : xg_.data();
  h1_.resize(size_t(R) * F), a_.resize(size_t(R) * F), y_.resize(size_t(R) * C);
  if (moe_gated(sp.mlp)) h3_.resize(size_t(R) * F);
  for_each_expert([&](int e, int o, int cnt) {
    const size_t wo = size_t(e) * F * C;
    const float* xo = xg ? xg + size_t(o) * C : nullptr;
    mm_nt(&h1_[size_t(o) * F], xo, bf ? &xg_bf_[size_t(o) * C] : nullptr, w.w1 + wo, bf ? wbf->w1 + wo : nullptr, cnt,
          F, C, false);
    if (w.b1) bias_forward(&h1_[size_t(o) * F], w.b1 + size_t(e) * F, cnt, F);
    if (moe_gated(sp.mlp))
      mm_nt(&h3_[size_t(o) * F], xo, bf ? &xg_bf_[size_t(o) * C] : nullptr, w.w3 + wo, bf ? wbf->w3 + wo : nullptr,
            cnt, F, C, false);
  });
  const size_t RF = size_t(R) * F;
  switch (sp.mlp) {
    case MlpKind::SwiGLU: swiglu_forward(a_.data(), h1_.data(), h3_.data(), RF); break;
    case MlpKind::GeGLU: geglu_forward(a_.data(), h1_.data(), h3_.data(), RF); break;
    case MlpKind::Relu: relu_forward(a_.data(), h1_.data(), RF); break;
    case MlpKind::Gelu: gelu_forward(a_.data(), h1_.data(), RF); break;
  }
  if (sp.expert_dropout > 0) apply_expert_dropout(a_.data(), R, F, sp.K);
  if (bf) bf16_copy(a_bf_, a_);
  for_each_expert([&](int e, int o, int cnt) {
    const size_t wo = size_t(e) * C * F;
    mm_nt(&y_[size_t(o) * C], &a_[size_t(o) * F], bf ? &a_bf_[size_t(o) * F] : nullptr, w.w2 + wo,
          bf ? wbf->w2 + wo : nullptr, cnt, C, F, false);
    if (w.b2) bias_forward(&y_[size_t(o) * C], w.b2 + size_t(e) * C, cnt, C);
  });
}

// The local experts' backward over the grouped rows: dy_ (or its bf16 copy d_bf_,
// already filled when dy_bf_ready) -> weight gradients (accumulated) and dxg_.
void MoeBlock::experts_backward(MoeGrads<float>& g, const MoeWeights<float>& w, bool dy_bf_ready) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, F = sp.F, K = sp.K, R = offsets_[El_];
  const bool bf = bf_;
  std::vector<float>& dy = dy_;
  if (bf && !dy_bf_ready) bf16_copy(d_bf_, dy);
  // fp32 rows (absent when only their bf16 copy travelled: the bf16 GEMMs read that).
  auto dyf = [&](int o) { return dy.empty() ? nullptr : dy.data() + size_t(o) * C; };
  auto xgf = [&](int o) { return xg_.empty() ? nullptr : xg_.data() + size_t(o) * C; };
  std::vector<float>& da = da_;
  da.resize(size_t(R) * F);
  for_each_expert([&](int e, int o, int cnt) {
    const size_t wo = size_t(e) * C * F;
    const bf16* dyb = bf ? &d_bf_[size_t(o) * C] : nullptr;
    mm_tn_acc(g.w2 + wo, dyf(o), dyb, &a_[size_t(o) * F], bf ? &a_bf_[size_t(o) * F] : nullptr, C, F, cnt);
    if (g.b2) bias_backward(g.b2 + size_t(e) * C, dyf(o), cnt, C);
    mm_nn(&da[size_t(o) * F], dyf(o), dyb, w.w2 + wo, bf ? wbf_.w2 + wo : nullptr, cnt, F, C, false);
  });
  if (sp.expert_dropout > 0) apply_expert_dropout(da.data(), R, F, K);
  std::vector<float>& dh1 = dh1_;
  std::vector<float>& dh3 = dh3_;
  dh1.resize(size_t(R) * F);
  const size_t RF = size_t(R) * F;
  if (moe_gated(sp.mlp)) dh3.resize(RF);
  switch (sp.mlp) {
    case MlpKind::SwiGLU: swiglu_backward(dh1.data(), dh3.data(), da.data(), h1_.data(), h3_.data(), RF); break;
    case MlpKind::GeGLU: geglu_backward(dh1.data(), dh3.data(), da.data(), h1_.data(), h3_.data(), RF); break;
    case MlpKind::Relu: relu_backward(dh1.data(), h1_.data(), da.data(), RF); break;
    case MlpKind::Gelu: gelu_backward(dh1.data(), h1_.data(), da.data(), RF); break;
  }
  std::vector<float>& dxg = dxg_;
  dxg.resize(size_t(R) * C);
  std::vector<bf16>& dh1b = dh1b_;
  std::vector<bf16>& dh3b = dh3b_;
  if (bf) {
    bf16_copy(dh1b, dh1);
    if (moe_gated(sp.mlp)) {
      bf16_copy(dh3b, dh3);
    }
  }
  for_each_expert([&](int e, int o, int cnt) {
    const size_t wo = size_t(e) * F * C;
    const bf16* xgb = bf ? &xg_bf_[size_t(o) * C] : nullptr;
    mm_tn_acc(g.w1 + wo, &dh1[size_t(o) * F], bf ? &dh1b[size_t(o) * F] : nullptr, xgf(o), xgb, F, C,
              cnt);
    if (g.b1) bias_backward(g.b1 + size_t(e) * F, &dh1[size_t(o) * F], cnt, F);
    mm_nn(&dxg[size_t(o) * C], &dh1[size_t(o) * F], bf ? &dh1b[size_t(o) * F] : nullptr, w.w1 + wo,
          bf ? wbf_.w1 + wo : nullptr, cnt, C, F, false);
    if (moe_gated(sp.mlp)) {
      mm_tn_acc(g.w3 + wo, &dh3[size_t(o) * F], bf ? &dh3b[size_t(o) * F] : nullptr, xgf(o), xgb, F,
                C, cnt);
      mm_nn(&dxg[size_t(o) * C], &dh3[size_t(o) * F], bf ? &dh3b[size_t(o) * F] : nullptr, w.w3 + wo,
            bf ? wbf_.w3 + wo : nullptr, cnt, C, F, true);
    }
  });
}

void MoeBlock::backward(float* dx, MoeGrads<float>& g, const float* dout, const float* x, const MoeWeights<float>& w,
                        float dloss_scale) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K, N = N_;
  const bool bf = bf_;
  // Combine backward: dy rows = weight * dout[token]; d weight = dout[token] . y.
  // Scratch reused across calls: fresh multi-megabyte vectors would page-fault every
  // step (measured: the backward took 4x the dense MLP's time before this).
  std::vector<float>& dweight = dweight_;
  dweight.assign(size_t(N) * K, 0.0f);
  bool dy_bf_ready = false;
  if (ep_) {  // computed where the tokens are, then sent to the experts' ranks
    ep_backward_send(dout, bf);
    dy_bf_ready = bf && dy_.empty();
  } else {
    const int R = offsets_[E];
    std::vector<float>& dy = dy_;
    dy.resize(size_t(R) * C);
#pragma omp parallel for schedule(static)
    for (int row = 0; row < R; row++) {
      const int pair = row_pair_[row], n = pair / K;
      if (pair < 0) {  // padding: no gradient
        std::memset(&dy[size_t(row) * C], 0, C * sizeof(float));
        continue;
      }
      const float wt = float(r_.weight[pair]);
      const float* d = dout + size_t(n) * C;
      const float* y = &y_[size_t(row) * C];
      float* dyr = &dy[size_t(row) * C];
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < C; c++) {
        dyr[c] = wt * d[c];
        s += d[c] * y[c];
      }
      dweight[pair] = s;
    }
  }
  experts_backward(g, w, dy_bf_ready);
  if (ep_) ep_return(dxg_, dxret_);  // the input gradients (fp32) to the tokens' ranks
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
  // Scatter the experts' input gradients back to the tokens, in choice order.
  const std::vector<int32_t>& rows = ep_ ? pair_slot_ : pair_row_;
  const std::vector<float>& src = ep_ ? dxret_ : dxg_;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const int row = rows[size_t(n) * K + k];
      if (row < 0) continue;
      float* d = dx + size_t(n) * C;
      const float* s = &src[size_t(row) * C];
#pragma omp simd
      for (int c = 0; c < C; c++) d[c] += s[c];
    }
}

}  // namespace moe
