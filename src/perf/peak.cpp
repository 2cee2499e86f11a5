// Peak FLOP/s by a register-only multiply-add loop per thread.
//
// Why this loop shape:
//  * Throughput, not latency. A multiply-add depends on its accumulator from the
//    previous one, so one chain runs at 1 op per latency (FMA: 4 cycles; vdpbf16ps:
//    about 6 cycles on Zen 4/5). To keep every FP pipe busy every cycle we need
//    latency x pipes independent chains: 4 x 2 = 8 for FMA, 6 x 2 = 12 for vdpbf16ps
//    on two 512-bit pipes. kAcc512 = 16 covers both with headroom and still leaves 14
//    of the 32 zmm registers free, so nothing spills (a spill puts a load/store into
//    every chain and the figure collapses). Measured here (1 thread, GFLOP/s,
//    fp32 / bf16) with 4, 8, 12, 16 chains: 110/145, 212/295, 223/409, 226/451: fp32
//    saturates at 8 chains, bf16 only at 16 (so its latency is ~6).
//  * No memory: operands are loop-invariant registers, so the figure is the FP pipes
//    alone, the upper bound a GEMM can approach but not exceed.
//  * Fully unrolled body (2 x kAcc ops per trip): the loop counter and branch run on
//    the integer side and are a few % of the instructions.
//  * Not optimisable: the multiplier/addend come from volatiles (unknown to the
//    compiler), there is no fast-math (so no reassociation of the chains), and the
//    accumulators are summed into a volatile sink.
//  * All threads run at once (one OpenMP parallel region), and the figure is the best
//    of many 1 ms windows in which all threads ran together. Interference from other
//    processes only ever makes it slower; short windows find a moment when every
//    thread had its core, as the best of many GEMM calls does. (Long runs timed as a
//    whole were tried first: on this 2-core machine shared with compilers, one
//    descheduled thread, or one woken late from the barrier, made a 2-thread run
//    10-100x slower, and the peak fell far below GEMMs measured just after.)
// Values stay normal floats (no denormals, no overflow), so no microcode assists.
#include "perf/peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/cpu.h"

namespace moe {

namespace {

volatile float g_mul = 0.999f;   // acc = acc * mul + add converges to add/(1-mul) = 1
volatile float g_add = 0.001f;
volatile uint16_t g_bf16_op = 0x3a80;  // bf16 2^-10: products 2^-20, sums stay far from overflow
volatile float g_sink = 0;

constexpr int kAcc512 = 16;  // independent zmm chains (see above)
constexpr int kAcc256 = 12;  // AVX2 has only 16 ymm registers: 12 chains + 2 operands

// (Not _mm512_reduce_add_ps: GCC 12 warns inside it about an uninitialised temporary.)
__attribute__((target("avx512f"))) float hsum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float r = 0;
  for (float x : lanes) r += x;
  return r;
}

__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t trips) {
  const __m512 m = _mm512_set1_ps(g_mul), a = _mm512_set1_ps(g_add);
  __m512 acc[kAcc512];
#pragma GCC unroll 16
  for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_set1_ps(float(i) * 0.01f);
  for (int64_t t = 0; t < trips; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
#pragma GCC unroll 16
    for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < kAcc512; ++i) s = _mm512_add_ps(s, acc[i]);
  return hsum(s);
}
constexpr double kFlopsPerTripAvx512 = 2.0 * kAcc512 * 16 * 2;  // ops x lanes x (mul+add)

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t trips) {
  const __m256 m = _mm256_set1_ps(g_mul), a = _mm256_set1_ps(g_add);
  __m256 acc[kAcc256];
#pragma GCC unroll 16
  for (int i = 0; i < kAcc256; ++i) acc[i] = _mm256_set1_ps(float(i) * 0.01f);
  for (int64_t t = 0; t < trips; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < kAcc256; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
#pragma GCC unroll 16
    for (int i = 0; i < kAcc256; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  }
  __m256 s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < kAcc256; ++i) s = _mm256_add_ps(s, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float r = 0;
  for (float v : lanes) r += v;
  return r;
}
constexpr double kFlopsPerTripAvx2 = 2.0 * kAcc256 * 8 * 2;

// vdpbf16ps: per fp32 lane, acc += a[2i]*b[2i] + a[2i+1]*b[2i+1]: 32 products and
// 32 adds = 64 flops per zmm instruction (the convention oneDNN and vendors use).
__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop(int64_t trips) {
  const __m512bh x = (__m512bh)_mm512_set1_epi16(short(g_bf16_op));
  const __m512bh y = (__m512bh)_mm512_set1_epi16(short(g_bf16_op));
  __m512 acc[kAcc512];
#pragma GCC unroll 16
  for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_set1_ps(float(i) * 0.01f);
  for (int64_t t = 0; t < trips; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
#pragma GCC unroll 16
    for (int i = 0; i < kAcc512; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < kAcc512; ++i) s = _mm512_add_ps(s, acc[i]);
  return hsum(s);
}
constexpr double kFlopsPerTripBf16 = 2.0 * kAcc512 * 64;

// GFLOP/s of loop on `threads` threads together: the best of many short windows.
// In a window every thread runs chunks of kChunkTrips for kWindow seconds by its own
// clock; its rate is its flops over its own elapsed time, and the window's rate is
// the sum over threads, counted only when the threads' intervals overlapped for most
// of the window (so threads that share a core, as SMT siblings, are measured sharing
// it). One parallel region holds all the windows, so threads do not sleep between them.
double measure(float (*loop)(int64_t), double flops_per_trip, int threads, double seconds) {
  constexpr double kWindow = 1e-3;       // s; a few GEMM calls, inside a scheduler slice
  constexpr double kOverlap = 0.9;       // of kWindow, all threads running at once
  constexpr int64_t kChunkTrips = 1024;  // ~5 us: the clock costs < 0.5%
  threads = threads > 0 ? threads : threads_get();
  const int windows = std::max(5, int(seconds / kWindow));
  std::vector<int64_t> chunks(threads, 0);
  std::vector<double> starts(threads, 0.0), ends(threads, 0.0);
  std::vector<float> sums(threads, 0.0f);
  double best = 0, best_any = 0;  // best_any: also windows where threads did not overlap
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    float s = 0;
    // Until one window qualified, up to 10x longer (best is the same for all threads:
    // written in the single below, whose barrier all pass before reading it).
    for (int w = 0; w < windows || (best == 0 && w < 10 * windows); ++w) {
#pragma omp barrier
      const double start = omp_get_wtime();
      int64_t n = 0;
      double now;
      do {
        s += loop(kChunkTrips);
        ++n;
        now = omp_get_wtime();
      } while (now - start < kWindow);
      chunks[tid] = n, starts[tid] = start, ends[tid] = now;
#pragma omp barrier
#pragma omp single
      {
        double rate = 0, last_start = starts[0], first_end = ends[0];
        for (int i = 0; i < nt; ++i) {
          rate += double(chunks[i]) * double(kChunkTrips) * flops_per_trip / (ends[i] - starts[i]);
          last_start = std::max(last_start, starts[i]);
          first_end = std::min(first_end, ends[i]);
        }
        if (first_end - last_start >= kOverlap * kWindow) best = std::max(best, rate);
        best_any = std::max(best_any, rate);
      }
    }
    sums[tid] = s;
  }
  float s = 0;
  for (float v : sums) s += v;
  g_sink = s;
  return (best > 0 ? best : best_any) * 1e-9;
}

}  // namespace

double peak_fp32_gflops(int threads, double seconds) {
  if (cpu_has_avx512f()) return measure(fma_loop_avx512, kFlopsPerTripAvx512, threads, seconds);
  return measure(fma_loop_avx2, kFlopsPerTripAvx2, threads, seconds);
}

std::optional<double> peak_bf16_gflops(int threads, double seconds) {
  if (!cpu_has_avx512_bf16()) return std::nullopt;
  return measure(dpbf16_loop, kFlopsPerTripBf16, threads, seconds);
}

double Peak::bf16_bound() const {
  if (bf16_gemm_route() == Bf16Gemm::Widen) return fp32_gflops;
  return bf16_gflops.value_or(0.0);
}

Peak peak_measure(int threads, double seconds_each) {
  Peak p;
  p.bf16_gemm = bf16_gemm_route_name(bf16_gemm_route());
  p.threads = threads > 0 ? threads : threads_get();
  p.fp32_isa = cpu_has_avx512f() ? "avx512" : "avx2";
  p.fp32_gflops = peak_fp32_gflops(p.threads, seconds_each);
  p.bf16_gflops = peak_bf16_gflops(p.threads, seconds_each);
  return p;
}

const AutoCompute& compute_auto() {
  static const AutoCompute a = [] {
    AutoCompute r;
    const std::string tier = isa_tier_name(cpu_tier());
    if (cpu_tier() < IsaTier::AVX512_BF16) {
      r.why = tier + (cpu_tier() < IsaTier::AVX512 ? ": no bf16 GEMM, bf16 would be widened to f32"
                                                   : ": no native bf16 (oneDNN emulates it)");
      return r;
    }
    const int threads = threads_get();
    const double f32 = peak_fp32_gflops(threads, 0.05), bf16 = peak_bf16_gflops(threads, 0.05).value_or(0.0);
    r.bf16 = bf16 >= 1.2 * f32;
    char buf[160];
    std::snprintf(buf, sizeof buf, ": measured bf16 peak %.0f GFLOP/s %s 1.2x the f32 FMA peak %.0f", bf16,
                  r.bf16 ? "at least" : "below", f32);
    r.why = tier + buf;
    return r;
  }();
  return a;
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) break;
    auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown" : line.substr(start);
  }
  return "unknown";
}

}  // namespace moe
