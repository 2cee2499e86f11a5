#include <cpuid.h>
#include "tensor/cpu.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>

namespace moe {

bool cpu_has_avx512f() { return __builtin_cpu_supports("avx512f"); }

bool cpu_has_avx512_bf16() {
  // GCC 12's __builtin_cpu_supports knows "avx512bf16".
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

bool cpu_has_amx_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d >> 22) & 1u;  // CPUID.(EAX=7,ECX=0):EDX[22] = AMX-BF16
}

int cpu_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, omp_get_num_procs());
}

static int g_threads = 0;

int threads_get() { return g_threads > 0 ? g_threads : threads_set(0); }

int threads_set(int n) {
  int cores = cpu_cores();
  g_threads = (n <= 0 || n > cores) ? cores : n;
  omp_set_num_threads(g_threads);
  return g_threads;
}

}  // namespace moe
