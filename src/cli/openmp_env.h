// How long moe's OpenMP threads spin before they sleep, chosen for a machine that other
// work may share (issue 21, item 11).
//
// libgomp's default (OMP_WAIT_POLICY and GOMP_SPINCOUNT unset) has a waiting thread spin
// 300,000 rounds before it sleeps. On a busy machine the spinning threads take the cores
// the working ones need; sleeping at once (OMP_WAIT_POLICY=passive) costs the wake-up of
// every parallel region instead. Measured with a tiny model on 2 threads of a 2-core
// AMD EPYC (tokens/s, one run each; README "Threads on a shared machine"): quiet, the
// default ~30k, 1,000 rounds ~26-30k, passive ~8k; beside 3 busy processes, the default
// ~3.2k, 1,000 rounds ~6.7-7.8k, passive ~11-13k. 1,000 rounds is never far from the
// best of both, so moe sets GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT
// is set. libgomp reads them once, when it is loaded, before main() runs: moe sets the
// variable and executes itself again (same PID, arguments and environment otherwise).
#pragma once

namespace moe::cli {

// Returns when the policy is already chosen (or the re-exec failed: moe then runs with
// libgomp's default). Call first thing in main(), before any thread exists.
void openmp_spin_unless_chosen(char** argv);

}  // namespace moe::cli
