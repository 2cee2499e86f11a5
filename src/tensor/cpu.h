// What this CPU can do, and how many threads we may use (never more than cores).
//
// The instruction-set tier is oneDNN's effective ISA (dnnl::get_effective_cpu_isa()):
// the best the CPU has, capped by ONEDNN_MAX_CPU_ISA when set (e.g. ONEDNN_MAX_CPU_ISA=AVX2
// on an AVX-512 machine runs the AVX2 tier: oneDNN's kernels and moe's own alike).
// Read once, at the first call, and fixed for the process.
#pragma once

namespace moe {

enum class IsaTier {
  SSE41,        // below AVX2: oneDNN's SSE4.1 kernels; moe's own loops scalar
  AVX2,         // AVX2 + FMA (Zen 1-3, Haswell..): no bf16 GEMM in oneDNN 2.6
  AVX512,       // avx512_core (Skylake-SP..): oneDNN's bf16 GEMM emulated on AVX-512
  AVX512_BF16,  // avx512_core_bf16 (Cooper Lake, Zen 4): vdpbf16ps
  AMX,          // avx512_core_amx (Sapphire Rapids..): bf16 tiles
};
IsaTier cpu_tier();
const char* isa_tier_name(IsaTier t);  // "avx2", "avx512", "avx512_bf16", "amx", "sse41"

bool cpu_has_avx512f();      // tier >= AVX512
bool cpu_has_avx512_bf16();  // tier >= AVX512_BF16
// AMX with bf16 tiles (Sapphire Rapids and later): oneDNN's bf16 GEMMs then run on the
// tile unit, beyond what the vector pipes (vdpbf16ps, the measured bf16 peak) can do.
bool cpu_has_amx_bf16();     // tier >= AMX

// How matmul_bf16 computes (chosen once, from the tier):
//   Native: oneDNN's bf16 matmul (AVX-512 and up), fp32 accumulation.
//   Widen:  the bf16 operands widened to f32, then oneDNN's f32 matmul. A product of two
//           bf16 values is exact in f32, so this gives the native result up to the order
//           of the f32 summation (oneDNN 2.6 has no bf16 matmul below avx512_core).
// (ONEDNN_MAX_CPU_ISA=AVX2 takes Widen on any machine; matmul_bf16_widen runs it directly.)
enum class Bf16Gemm { Native, Widen };
Bf16Gemm bf16_gemm_route();
const char* bf16_gemm_route_name(Bf16Gemm r);  // "onednn-bf16" | "widen-to-f32"

// "isa avx2, f32 GEMM onednn-f32, bf16 GEMM widen-to-f32": for run headers and benchmarks.
const char* cpu_compute_summary();

int cpu_cores();            // logical CPUs available to this process
int threads_get();          // threads the library uses now
// Sets the thread count for OpenMP (and so oneDNN). n <= 0 means all cores, shared
// among the ranks mpirun started on this machine (OMPI_COMM_WORLD_LOCAL_SIZE and the
// like); n above the core count is clamped to it. Returns the count in effect.
int threads_set(int n);

}  // namespace moe
