// A command's model (model/open.h) and its expert groups under mpirun.
#pragma once
#include <memory>

#include "model/open.h"
#include "train/expert_parallel.h"

namespace moe::cli {

using moe::OpenedModel;
using moe::open_model;

// The expert groups of `--expert-parallel EP` over mpirun's ranks (null for EP = 1);
// a usage error when EP does not divide the ranks.
std::unique_ptr<ExpertGroups> expert_groups_for(int EP);

}  // namespace moe::cli
