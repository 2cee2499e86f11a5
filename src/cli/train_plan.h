// moe train --plan: the memory estimate of a run (model/memory.h) per rank, as a
// table, without allocating or training.
#pragma once
#include <string>

#include "model/config.h"
#include "model/memory.h"

namespace moe::cli {

// Prints the plan of training `mc` (described by `what`) with the options in `o`.
void print_train_plan(const ModelConfig& mc, const std::string& what, const MemoryOptions& o);

}  // namespace moe::cli
