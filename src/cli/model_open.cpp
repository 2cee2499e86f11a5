#include "cli/model_open.h"

#include "cli/cli_util.h"
#include "dist/comm.h"

namespace moe::cli {

std::unique_ptr<ExpertGroups> expert_groups_for(int EP) {
  const int ranks = launched_by_mpi() ? comm_world().size() : 1;
  if (EP < 1 || ranks % EP != 0)
    throw UsageError("--expert-parallel " + std::to_string(EP) + " must divide the " + std::to_string(ranks) +
                     (launched_by_mpi() ? " ranks" : " rank (start moe with mpirun -np P for more)"));
  return EP > 1 ? make_expert_groups(comm_world(), EP) : nullptr;
}

}  // namespace moe::cli
