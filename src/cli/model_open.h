// Opening a model for a command: the directory resolved (a run directory gives its
// newest complete checkpoint), config.json validated and checked against memory,
// every tensor checked (shape, finiteness), and the tokenizer.model beside it, when
// there is one, loaded and checked against the model's vocabulary.
#pragma once
#include <memory>
#include <string>

#include "model/lm.h"
#include "train/expert_parallel.h"

namespace moe::cli {

struct OpenedModel {
  std::string dir;
  std::unique_ptr<LanguageModel> model;  // built by its family (model/arch.h)
};

// split: the experts to load and the group holding the others (expert parallelism;
// the default: all), refused for a family without it.
OpenedModel open_model(const std::string& path, ExpertSplit split = {});

// The expert groups of `--expert-parallel EP` over mpirun's ranks (null for EP = 1);
// a usage error when EP does not divide the ranks.
std::unique_ptr<ExpertGroups> expert_groups_for(int EP);

}  // namespace moe::cli
