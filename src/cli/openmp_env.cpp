#include "cli/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace moe::cli {

void openmp_spin_unless_chosen(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (::setenv("GOMP_SPINCOUNT", "1000", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // Not executed again (no /proc): go on with the default, and keep the variable out
  // of what this process starts.
  ::unsetenv("GOMP_SPINCOUNT");
}

}  // namespace moe::cli
