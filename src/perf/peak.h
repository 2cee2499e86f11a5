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

// "model name" from /proc/cpuinfo, or "unknown".
std::string cpu_model_name();

}  // namespace moe
