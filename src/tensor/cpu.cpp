#include <cpuid.h>
#include "tensor/cpu.h"

#include <cstdlib>

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

namespace moe {

namespace {

// What the hardware has, by CPUID.
IsaTier hardware_tier() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool amx = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 22) & 1u);  // EDX[22] = AMX-BF16
  const bool avx512_core = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512_core && amx) return IsaTier::AMX;
  if (avx512_core && __builtin_cpu_supports("avx512bf16")) return IsaTier::AVX512_BF16;
  if (avx512_core) return IsaTier::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IsaTier::AVX2;
  return IsaTier::SSE41;
}

// What oneDNN will use: the hardware's ISA capped by ONEDNN_MAX_CPU_ISA. Its values are
// bit masks, each ISA's mask containing those of the ISAs below it.
IsaTier onednn_tier() {
  const unsigned isa = unsigned(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl::cpu_isa x) { return (isa & unsigned(x)) == unsigned(x); };
  if (has(dnnl::cpu_isa::avx512_core_amx)) return IsaTier::AMX;
  if (has(dnnl::cpu_isa::avx512_core_bf16)) return IsaTier::AVX512_BF16;
  if (has(dnnl::cpu_isa::avx512_core)) return IsaTier::AVX512;
  if (has(dnnl::cpu_isa::avx2)) return IsaTier::AVX2;
  return IsaTier::SSE41;
}

}  // namespace

IsaTier cpu_tier() {
  static const IsaTier t = std::min(hardware_tier(), onednn_tier());
  return t;
}

const char* isa_tier_name(IsaTier t) {
  switch (t) {
    case IsaTier::SSE41: return "sse41";
    case IsaTier::AVX2: return "avx2";
    case IsaTier::AVX512: return "avx512";
    case IsaTier::AVX512_BF16: return "avx512_bf16";
    case IsaTier::AMX: return "amx";
  }
  return "?";
}

bool cpu_has_avx512f() { return cpu_tier() >= IsaTier::AVX512; }
bool cpu_has_avx512_bf16() { return cpu_tier() >= IsaTier::AVX512_BF16; }
bool cpu_has_amx_bf16() { return cpu_tier() >= IsaTier::AMX; }

Bf16Gemm bf16_gemm_route() {
  return cpu_tier() >= IsaTier::AVX512 ? Bf16Gemm::Native : Bf16Gemm::Widen;
}

const char* bf16_gemm_route_name(Bf16Gemm r) { return r == Bf16Gemm::Native ? "onednn-bf16" : "widen-to-f32"; }

const char* cpu_compute_summary() {
  static const std::string s =
      std::string("isa ") + isa_tier_name(cpu_tier()) + ", f32 GEMM onednn-f32, bf16 GEMM " +
      bf16_gemm_route_name(bf16_gemm_route());
  return s.c_str();
}

int cpu_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, omp_get_num_procs());
}

static int g_threads = 0;

int threads_get() { return g_threads > 0 ? g_threads : threads_set(0); }

// Ranks of this job on this machine, from the launcher's environment (Open MPI, MPICH's
// hydra, Slurm's PMI); 1 outside mpirun.
static int local_ranks() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"})
    if (const char* s = std::getenv(v)) {
      const int n = std::atoi(s);
      if (n > 0) return n;
    }
  return 1;
}

int threads_set(int n) {
  const int cores = cpu_cores();
  // The default shares the cores among the job's ranks on this machine: two ranks on
  // 2 cores take one thread each, not two (issue 21, item 13: oversubscribed 2x).
  const int share = std::max(1, cores / local_ranks());
  g_threads = n <= 0 ? share : std::min(n, cores);
  omp_set_num_threads(g_threads);
  return g_threads;
}

}  // namespace moe
