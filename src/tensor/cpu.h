// What this CPU can do, and how many threads we may use (never more than cores).
#pragma once

namespace moe {

bool cpu_has_avx512f();
bool cpu_has_avx512_bf16();
// AMX with bf16 tiles (Sapphire Rapids and later): oneDNN's bf16 GEMMs then run on the
// tile unit, beyond what the vector pipes (vdpbf16ps, the measured bf16 peak) can do.
bool cpu_has_amx_bf16();

int cpu_cores();            // logical CPUs available to this process
int threads_get();          // threads the library uses now
// Sets the thread count for OpenMP (and so oneDNN). n <= 0 means all cores;
// n above the core count is clamped to it. Returns the count in effect.
int threads_set(int n);

}  // namespace moe
