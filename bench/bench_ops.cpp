// Microbenchmarks of each op's fast path against its reference, at transformer
// sizes (Google Benchmark). Not a test: nothing here asserts a time.
//   build/bench/bench_ops --benchmark_filter=LayerNorm
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_general.h"
#include "ops/cross_entropy.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/relpos.h"
#include "ops/relu.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace {

std::vector<float> rnd(size_t n, unsigned seed = 1) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

constexpr int kN = 2048, kC = 512;  // tokens, model width

void LayerNormFwdBwd(benchmark::State& st) {
  auto x = rnd(size_t(kN) * kC), w = rnd(kC), b = rnd(kC), g = rnd(size_t(kN) * kC);
  std::vector<float> out(x.size()), m(kN), r(kN), dx(x.size()), dw(kC), db(kC);
  for (auto _ : st) {
    moe::layernorm_forward(out.data(), m.data(), r.data(), x.data(), w.data(), b.data(), kN, kC, 1e-5f);
    moe::layernorm_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), m.data(), r.data(), kN,
                            kC);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kN * kC * 4 * 5);
}
BENCHMARK(LayerNormFwdBwd)->Unit(benchmark::kMicrosecond);

void RMSNormFwdBwd(benchmark::State& st) {
  auto x = rnd(size_t(kN) * kC), w = rnd(kC), g = rnd(size_t(kN) * kC);
  std::vector<float> out(x.size()), r(kN), dx(x.size()), dw(kC);
  for (auto _ : st) {
    moe::rmsnorm_forward(out.data(), r.data(), x.data(), w.data(), kN, kC, 1e-6f);
    moe::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), r.data(), kN, kC);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kN * kC * 4 * 5);
}
BENCHMARK(RMSNormFwdBwd)->Unit(benchmark::kMicrosecond);

void GeluFwdBwd(benchmark::State& st) {
  size_t n = size_t(kN) * 4 * kC;
  auto x = rnd(n), g = rnd(n);
  std::vector<float> o(n), d(n);
  for (auto _ : st) {
    moe::gelu_forward(o.data(), x.data(), n);
    moe::gelu_backward(d.data(), x.data(), g.data(), n);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(GeluFwdBwd)->Unit(benchmark::kMicrosecond);

void SwigluFwdBwd(benchmark::State& st) {
  size_t n = size_t(kN) * 4 * kC;
  auto a = rnd(n), b = rnd(n, 2), g = rnd(n, 3);
  std::vector<float> o(n), da(n), db(n);
  for (auto _ : st) {
    moe::swiglu_forward(o.data(), a.data(), b.data(), n);
    moe::swiglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(SwigluFwdBwd)->Unit(benchmark::kMicrosecond);

void GegluFwdBwd(benchmark::State& st) {
  size_t n = size_t(kN) * 4 * kC;
  auto a = rnd(n), b = rnd(n, 2), g = rnd(n, 3);
  std::vector<float> o(n), da(n), db(n);
  for (auto _ : st) {
    moe::geglu_forward(o.data(), a.data(), b.data(), n);
    moe::geglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(GegluFwdBwd)->Unit(benchmark::kMicrosecond);

void RopeFwd(benchmark::State& st) {
  const int B = 8, T = 256, H = 8, D = 64;
  auto x = rnd(size_t(B) * T * H * D);
  for (auto _ : st) moe::rope_forward(x.data(), x.data(), B, T, H, D, 10000.0f, 0);
  st.SetItemsProcessed(int64_t(st.iterations()) * x.size());
}
BENCHMARK(RopeFwd)->Unit(benchmark::kMicrosecond);

// Attention at B=8, T=256, H=8, Hkv=arg, D=64: flops 2 (QK^T) + 2 (PV) per causal pair.
void AttentionFwdBwd(benchmark::State& st) {
  const int B = 8, T = 256, H = 8, Hkv = int(st.range(0)), D = 64;
  auto q = rnd(size_t(B) * T * H * D), k = rnd(size_t(B) * T * Hkv * D, 2), v = rnd(size_t(B) * T * Hkv * D, 3);
  std::vector<float> out(q.size()), att(size_t(B) * H * T * T), dq(q.size()), dk(k.size()), dv(v.size());
  for (auto _ : st) {
    moe::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
    moe::attention_backward(dq.data(), dk.data(), dv.data(), out.data(), q.data(), k.data(), v.data(), att.data(),
                            B, T, H, Hkv, D);
  }
  double pairs = double(B) * H * T * (T + 1) / 2;
  st.counters["GFLOP/s"] = benchmark::Counter(pairs * D * 12 * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(AttentionFwdBwd)->Arg(8)->Arg(2)->Unit(benchmark::kMillisecond);

// T5 attention at B=8, T=256, H=8, D=64, scale 1, with its relative position bias
// (computed from the table and its gradient summed back, as a T5 layer does):
// arg 1 causal (decoder self-attention), 0 not (encoder). The GEMMs cover the full
// T x T block either way: 12 flops per (query, key, d).
void AttentionGeneralFwdBwd(benchmark::State& st) {
  const int B = 8, T = 256, H = 8, D = 64, NB = 32, MD = 128;
  const bool causal = st.range(0) != 0;
  auto q = rnd(size_t(B) * T * H * D), k = rnd(size_t(B) * T * H * D, 2), v = rnd(size_t(B) * T * H * D, 3),
       table = rnd(size_t(NB) * H, 4);
  for (auto& x : q) x *= 0.125f;  // T5 folds 1/sqrt(D) into q
  std::vector<float> bias(size_t(H) * T * T), out(q.size()), att(size_t(B) * H * T * T), dq(q.size()),
      dk(k.size()), dv(v.size()), ds(att.size()), dtable(table.size());
  for (auto _ : st) {
    moe::relpos_bias_forward(bias.data(), table.data(), T, T, H, NB, MD, !causal, 0);
    moe::attention_general_forward(out.data(), att.data(), q.data(), k.data(), v.data(), bias.data(), B, T, T, H, D,
                                   1.0f, causal);
    moe::attention_general_backward(dq.data(), dk.data(), dv.data(), ds.data(), out.data(), q.data(), k.data(),
                                    v.data(), att.data(), B, T, T, H, D, 1.0f, causal);
    moe::relpos_bias_backward(dtable.data(), ds.data(), B, T, T, H, NB, MD, !causal, 0);
  }
  double elems = double(B) * H * T * T;
  st.counters["GFLOP/s"] = benchmark::Counter(elems * D * 12 * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(AttentionGeneralFwdBwd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void CrossEntropyFwdBwd(benchmark::State& st) {
  const int N = 512, V = 8192;
  auto logits = rnd(size_t(N) * V), dl = rnd(N);
  std::vector<int32_t> tgt(N);
  for (int i = 0; i < N; i++) tgt[i] = (i * 7919) % V;
  std::vector<float> loss(N), lse(N), d(logits.size());
  for (auto _ : st) {
    moe::crossentropy_forward(loss.data(), lse.data(), logits.data(), tgt.data(), N, V);
    moe::crossentropy_backward(d.data(), dl.data(), logits.data(), lse.data(), tgt.data(), N, V);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * N * V);
}
BENCHMARK(CrossEntropyFwdBwd)->Unit(benchmark::kMicrosecond);

}  // namespace



// The MoE block against the dense SwiGLU MLP it replaces, at the small preset's sizes
// (N = 2048 tokens, C = 384, F = 1024), top-1 over 8 experts: the same FLOPs per token.
#include "moe/moe_layer.h"
#include "ops/linear.h"

namespace {

void DenseSwigluMlpFwdBwd(benchmark::State& st) {
  const int N = 2048, C = 384, F = 1024;
  auto x = rnd(size_t(N) * C), w1 = rnd(size_t(F) * C), w3 = rnd(size_t(F) * C, 2), w2 = rnd(size_t(C) * F, 3),
       g = rnd(size_t(N) * C, 4);
  std::vector<float> h1(size_t(N) * F), h3(h1.size()), a(h1.size()), y(x.size()), da(h1.size()), dh1(h1.size()),
      dh3(h1.size()), dx(x.size()), dw1(w1.size()), dw3(w3.size()), dw2(w2.size());
  for (auto _ : st) {
    moe::linear_forward(h1.data(), x.data(), w1.data(), nullptr, N, C, F);
    moe::linear_forward(h3.data(), x.data(), w3.data(), nullptr, N, C, F);
    moe::swiglu_forward(a.data(), h1.data(), h3.data(), a.size());
    moe::linear_forward(y.data(), a.data(), w2.data(), nullptr, N, F, C);
    moe::linear_backward(da.data(), dw2.data(), nullptr, g.data(), a.data(), w2.data(), N, F, C);
    moe::swiglu_backward(dh1.data(), dh3.data(), da.data(), h1.data(), h3.data(), a.size());
    moe::linear_backward(dx.data(), dw1.data(), nullptr, dh1.data(), x.data(), w1.data(), N, C, F);
    moe::linear_backward(dx.data(), dw3.data(), nullptr, dh3.data(), x.data(), w3.data(), N, C, F);
  }
}
BENCHMARK(DenseSwigluMlpFwdBwd)->Unit(benchmark::kMillisecond);

void MoeTop1E8FwdBwd(benchmark::State& st) {
  const int N = 2048, C = 384, F = 1024, E = 8;
  moe::MoeSpec sp;
  sp.C = C, sp.F = F, sp.E = E, sp.K = 1, sp.capacity_factor = float(st.range(0)) / 100.0f;
  auto x = rnd(size_t(N) * C), wr = rnd(size_t(E) * C, 5), w1 = rnd(size_t(E) * F * C), w3 = rnd(size_t(E) * F * C, 2),
       w2 = rnd(size_t(E) * C * F, 3), g = rnd(size_t(N) * C, 4);
  for (auto& v : wr) v *= 0.05f;
  std::vector<float> y(x.size()), dx(x.size()), dwr(wr.size()), dw1(w1.size()), dw3(w3.size()), dw2(w2.size());
  moe::MoeWeights<float> w{wr.data(), w1.data(), nullptr, w3.data(), w2.data(), nullptr};
  moe::MoeGrads<float> gr{dwr.data(), dw1.data(), nullptr, dw3.data(), dw2.data(), nullptr};
  moe::MoeBlock blk(sp);
  std::vector<moe::bf16> w1b(w1.size()), w3b(w3.size()), w2b(w2.size());
  moe::f32_to_bf16(w1b.data(), w1.data(), w1.size());
  moe::f32_to_bf16(w3b.data(), w3.data(), w3.size());
  moe::f32_to_bf16(w2b.data(), w2.data(), w2.size());
  moe::MoeWeights<moe::bf16> wb{nullptr, w1b.data(), nullptr, w3b.data(), w2b.data(), nullptr};
  const bool bf = st.range(1) != 0;
  for (auto _ : st) {
    blk.forward(y.data(), x.data(), N, w, bf ? &wb : nullptr);
    blk.backward(dx.data(), gr, g.data(), x.data(), w, 1.0f);
  }
  st.counters["dropped"] = blk.routing().dropped();
}
BENCHMARK(MoeTop1E8FwdBwd)->Args({125, 0})->Args({0, 0})->Args({125, 1})->Unit(benchmark::kMillisecond);

}  // namespace
BENCHMARK_MAIN();
