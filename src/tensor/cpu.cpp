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
