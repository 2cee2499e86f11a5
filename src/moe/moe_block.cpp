// The fast MoE block: route, gather each expert's rows together, run every expert as
// GEMMs over its rows (no per-token loops around the maths), scatter back weighted.
// The three stages (dispatch, experts, combine) are separate loops so that expert
// parallelism can put an all-to-all between them later.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "moe/block_util.h"
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

void bf16_copy(std::vector<bf16>& dst, const std::vector<float>& src) {
  dst.resize(src.size());
  f32_to_bf16(dst.data(), src.data(), src.size());
}

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

// The stages in order: route (router.cpp), losses (losses.cpp), dispatch and combine
// (dispatch.cpp, or the all-to-alls of exchange.cpp), the experts' GEMMs (here).
void MoeBlock::forward(float* out, const float* x, int N, const MoeWeights<float>& w, const MoeWeights<bf16>* wbf) {
  N_ = N;
  bf_ = wbf != nullptr;
  if (wbf) wbf_ = *wbf;
  route(x, N, w);
  const bool grouped = group_ && group_->size() > 1;
  losses_and_telemetry(N, grouped);
  if (ep_) {  // expert parallelism: the rows travel to their experts' ranks and back
    ep_dispatch(x, N, wbf != nullptr);
    experts_forward(w, wbf);
    ep_return(y_, yret_);  // the outputs (fp32) to the tokens' ranks
    combine(out, N, pair_slot_, yret_);
    return;
  }
  dispatch(x, N, wbf != nullptr);
  experts_forward(w, wbf);
  combine(out, N, pair_row_, y_);
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
  const bool dy_bf_ready = combine_backward(dout);
  experts_backward(g, w, dy_bf_ready);
  if (ep_) ep_return(dxg_, dxret_);  // the input gradients (fp32) to the tokens' ranks
  router_backward(dx, g, x, w, dloss_scale);
  scatter_backward(dx);
}

}  // namespace moe
