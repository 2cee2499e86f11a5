// OpenMP's wait policy for moe's threads, chosen for a machine that other work shares.
//
// libgomp's default (OMP_WAIT_POLICY unset) has idle threads spin for a while before
// they sleep. On a busy machine the spinning threads take the cores the working ones
// need: a tiny model on 2 threads of a 2-core machine at load ~6 trained 3-8x slower
// than with OMP_WAIT_POLICY=passive (issue 21, item 11; README "Threads"). libgomp
// reads the variable once, when it is loaded, before main() runs; so when neither
// OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, moe sets OMP_WAIT_POLICY=passive and
// executes itself again (same PID, arguments and environment otherwise). Setting
// either variable yourself (OMP_WAIT_POLICY=active for a machine of its own) keeps it.
#pragma once

namespace moe::cli {

// Returns when the policy is already chosen (or the re-exec failed: moe then runs
// with libgomp's default). Call first thing in main(), before any thread exists.
void openmp_passive_unless_chosen(char** argv);

}  // namespace moe::cli
