// The machine's measured peak arithmetic throughput: the denominator of every
// "fraction of peak" (MFU) figure that `moe bench` prints.
//
// Measured, not taken from a data sheet: each thread runs a register-only loop of
// independent multiply-adds (no memory traffic), so the figure is what the FP pipes
// of these cores deliver at the clock they actually run at, with this thread count.
#pragma once
#include <optional>
#include <string>

namespace moe {

struct Peak {
  int threads = 0;
  double fp32_gflops = 0;                // FMA: 2 flops per lane
  const char* fp32_isa = "";             // "avx512" or "avx2"
  std::optional<double> bf16_gflops;     // vdpbf16ps; absent without AVX512_BF16
  const char* bf16_gemm = "";            // how matmul_bf16 runs here (tensor/cpu.h): "onednn-bf16" | "widen-to-f32"
  // The ceiling of a bf16 GEMM here, for MFU: the vdpbf16ps peak where the CPU has it, the
  // f32 FMA peak where bf16 is widened to f32 (that is what computes), 0 where neither
  // bounds it (AVX-512 without BF16: oneDNN emulates bf16 products).
  double bf16_bound() const;
};

// fp32 peak (AVX-512 FMA, or AVX2 FMA when the CPU has no AVX-512), in GFLOP/s,
// of `threads` threads running at once. `seconds` is the time spent (longer only
// when other processes keep the threads from ever running together); the figure is
// the best 1 ms window, like the best call of a GEMM benchmark.
double peak_fp32_gflops(int threads, double seconds = 0.3);
// bf16 peak (vdpbf16ps: bf16 products, fp32 accumulation), or nullopt when the CPU
// has no AVX512_BF16.
std::optional<double> peak_bf16_gflops(int threads, double seconds = 0.3);
// Both, for `threads` threads (<= 0: the library's current thread count).
Peak peak_measure(int threads = 0, double seconds_each = 0.3);

// What `--compute auto` takes here, and why (one clause, for the run header): bf16 where
// the CPU multiplies bf16 natively (AVX512_BF16 or AMX) and its measured bf16 peak is at
// least 1.2x the f32 FMA peak; f32 elsewhere. The peaks are measured once per process
// (0.05 s each), and only on a tier with native bf16. Why measured: some AVX512_BF16
// CPUs run vdpbf16ps at half the f32 FMA rate (one 2-core Xeon here: 177 against 353
// GFLOP/s, and bf16 training 0.6x as fast as f32), others at twice it; below AVX512_BF16
// bf16 is widened to f32 (AVX2) or emulated (AVX-512), never faster.
struct AutoCompute {
  bool bf16 = false;
  std::string why;
};
const AutoCompute& compute_auto();

// "model name" from /proc/cpuinfo, or "unknown".
std::string cpu_model_name();

}  // namespace moe
