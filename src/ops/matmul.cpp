#include "ops/matmul.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/cpu.h"

namespace moe {

// ---------------------------------------------------------------- reference

template <typename S>
void matmul_ld_ref(S* C, int ldc, const S* A, int lda, const S* B, int ldb, int M, int N, int K, bool transA,
                   bool transB, bool accumulate) {
  for (int m = 0; m < M; m++) {
    for (int n = 0; n < N; n++) {
      double acc = 0.0;
      for (int k = 0; k < K; k++) {
        double a = transA ? A[size_t(k) * lda + m] : A[size_t(m) * lda + k];
        double b = transB ? B[size_t(n) * ldb + k] : B[size_t(k) * ldb + n];
        acc += a * b;
      }
      S* c = &C[size_t(m) * ldc + n];
      *c = accumulate ? S(*c + acc) : S(acc);
    }
  }
}

template <typename S>
void matmul_ref(S* C, const S* A, const S* B, int M, int N, int K, bool transA, bool transB, bool accumulate) {
  matmul_ld_ref(C, N, A, transA ? M : K, B, transB ? K : N, M, N, K, transA, transB, accumulate);
}

template void matmul_ref<float>(float*, const float*, const float*, int, int, int, bool, bool, bool);
template void matmul_ref<double>(double*, const double*, const double*, int, int, int, bool, bool, bool);
template void matmul_ld_ref<float>(float*, int, const float*, int, const float*, int, int, int, int, bool, bool,
                                   bool);
template void matmul_ld_ref<double>(double*, int, const double*, int, const double*, int, int, int, int, bool, bool,
                                    bool);

// ---------------------------------------------------------------- oneDNN

namespace {

using dnnl::memory;
using Dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e{dnnl::engine::kind::cpu, 0};
  return e;
}

// A primitive per (dtype, shape, strides, transposes, accumulate, threading
// context): creating one costs micro- to milliseconds (JIT), and training repeats
// the same few shapes. Primitives use a user scratchpad and each calling thread
// brings its own scratchpad and stream, so one primitive can run on several
// threads at once.
//
// The threading context is part of the key (issue 21, item 1). oneDNN sizes a
// primitive's work split and its scratchpad for the threads it sees when it is
// created: one inside an OpenMP parallel region (attention and the MoE experts
// call GEMMs there), omp_get_max_threads() outside. A primitive created in one
// context and executed in the other is outside oneDNN's contract; the same shape
// can occur in both (a head's GEMM and a layer's, an expert's and a dense MLP's),
// so each context gets its own primitive.
struct ThreadCtx {
  int in_parallel, max_threads;
};
ThreadCtx thread_ctx() { return {omp_in_parallel() ? 1 : 0, omp_get_max_threads()}; }

using Key = std::tuple<int, int, int, int, int, int, int, bool, bool, bool, int, int>;

struct Prim {
  dnnl::matmul prim;
  memory::desc a, b, c, scratch;
};

std::mutex g_mu;
std::map<Key, Prim> g_prims;

const Prim& lookup(Dt dt, int M, int N, int K, int lda, int ldb, int ldc, bool transA, bool transB, bool acc) {
  const ThreadCtx ctx = thread_ctx();
  Key key{int(dt), M, N, K, lda, ldb, ldc, transA, transB, acc, ctx.in_parallel, ctx.max_threads};
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_prims.find(key);
  if (it != g_prims.end()) return it->second;
  // Transposed operands are the same bytes with swapped strides: no copies.
  Prim p;
  p.a = memory::desc({M, K}, dt, transA ? memory::dims{1, lda} : memory::dims{lda, 1});
  p.b = memory::desc({K, N}, dt, transB ? memory::dims{1, ldb} : memory::dims{ldb, 1});
  p.c = memory::desc({M, N}, Dt::f32, memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (acc) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(p.a, p.b, p.c), attr, engine());
  } catch (const dnnl::error& e) {  // oneDNN's own words name neither the op nor the remedy
    const char* dname = dt == Dt::f32 ? "f32" : "bf16";
    throw std::runtime_error(
        std::string("oneDNN cannot make a ") + dname + " matmul (" + std::to_string(M) + "x" + std::to_string(K) +
        (transA ? "^T" : "") + " . " + std::to_string(K) + "x" + std::to_string(N) + (transB ? "^T" : "") +
        " -> f32) on this CPU (isa " + isa_tier_name(cpu_tier()) + "): " + e.what() +
        (dt == Dt::f32 ? "" : "; run with --compute f32"));
  }
  p.scratch = pd.scratchpad_desc();
  p.prim = dnnl::matmul(pd);
  return g_prims.emplace(key, std::move(p)).first->second;
}

void run_one(void* C, int ldc, const void* A, int lda, const void* B, int ldb, Dt dt, int M, int N, int K,
             bool transA, bool transB, bool accumulate) {
  const Prim& p = lookup(dt, M, N, K, lda, ldb, ldc, transA, transB, accumulate);
  thread_local dnnl::stream stream{engine()};
  thread_local std::vector<char> scratch;
  size_t need = p.scratch.get_size() + 64;  // + room to align the start to 64 bytes
  if (scratch.size() < need) scratch.resize(need);
  void* sp = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
  memory a(p.a, engine(), const_cast<void*>(A));
  memory b(p.b, engine(), const_cast<void*>(B));
  memory c(p.c, engine(), C);
  memory s(p.scratch, engine(), sp);
  p.prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, s}});
  stream.wait();
}

// Row counts (M) and reduction lengths (K) change every step in MoE layers (tokens
// per expert). A primitive per distinct value would JIT on almost every call and
// grow the cache without bound. Multiples of 16 run as they are (the MoE block pads
// its groups to 16 rows: a bounded set of values); any other M or K is split into a
// multiple of 64 and a remainder below 64, each created once.
constexpr int kBucket = 64, kAligned = 16;

void run(void* C, int ldc, const void* A, int lda, const void* B, int ldb, Dt dt, int M, int N, int K, bool transA,
         bool transB, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = 0, or C unchanged
    if (!accumulate)
      for (int m = 0; m < M; m++) std::memset(static_cast<float*>(C) + size_t(m) * ldc, 0, size_t(N) * 4);
    return;
  }
  const size_t esz = dt == Dt::f32 ? 4 : 2;
  auto at = [&](const void* base, size_t elems) { return static_cast<const char*>(base) + elems * esz; };
  const int M0 = M / kBucket * kBucket, K0 = K / kBucket * kBucket;
  if (M0 > 0 && M0 < M && M % kAligned != 0) {  // rows of A and C: split
    run(C, ldc, A, lda, B, ldb, dt, M0, N, K, transA, transB, accumulate);
    const size_t a_off = transA ? size_t(M0) : size_t(M0) * lda;
    run(static_cast<float*>(C) + size_t(M0) * ldc, ldc, at(A, a_off), lda, B, ldb, dt, M - M0, N, K, transA,
        transB, accumulate);
    return;
  }
  if (K0 > 0 && K0 < K && K % kAligned != 0) {  // the reduction: the second part adds onto the first
    run(C, ldc, A, lda, B, ldb, dt, M, N, K0, transA, transB, accumulate);
    const size_t a_off = transA ? size_t(K0) * lda : size_t(K0);
    const size_t b_off = transB ? size_t(K0) : size_t(K0) * ldb;
    run(C, ldc, at(A, a_off), lda, at(B, b_off), ldb, dt, M, N, K - K0, transA, transB, true);
    return;
  }
  run_one(C, ldc, A, lda, B, ldb, dt, M, N, K, transA, transB, accumulate);
}

}  // namespace

void matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA, bool transB,
            bool accumulate) {
  run(C, N, A, transA ? M : K, B, transB ? K : N, Dt::f32, M, N, K, transA, transB, accumulate);
}

void matmul_bf16_native(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                        bool accumulate) {
  run(C, N, A, transA ? M : K, B, transB ? K : N, Dt::bf16, M, N, K, transA, transB, accumulate);
}

void matmul_bf16_widen(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                       bool accumulate) {
  // Per calling thread (the MoE block runs experts' GEMMs on several threads at once).
  thread_local std::vector<float> a32, b32;
  const size_t na = size_t(M) * K, nb = size_t(K) * N;
  if (a32.size() < na) a32.resize(na);
  if (b32.size() < nb) b32.resize(nb);
  bf16_to_f32(a32.data(), A, na);  // exact: every bf16 value is an f32 value
  bf16_to_f32(b32.data(), B, nb);
  matmul(C, a32.data(), b32.data(), M, N, K, transA, transB, accumulate);
}

void matmul_bf16(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                 bool accumulate) {
  static const bool native = bf16_gemm_route() == Bf16Gemm::Native;
  if (native) matmul_bf16_native(C, A, B, M, N, K, transA, transB, accumulate);
  else matmul_bf16_widen(C, A, B, M, N, K, transA, transB, accumulate);
}

size_t matmul_primitives_cached() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_prims.size();
}

void matmul_ld(float* C, int ldc, const float* A, int lda, const float* B, int ldb, int M, int N, int K, bool transA,
               bool transB, bool accumulate) {
  run(C, ldc, A, lda, B, ldb, Dt::f32, M, N, K, transA, transB, accumulate);
}

}  // namespace moe
