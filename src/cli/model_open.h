// Opening a model for a command: the directory resolved (a run directory gives its
// newest complete checkpoint), config.json validated and checked against memory,
// every tensor checked (shape, finiteness), and the tokenizer.model beside it, when
// there is one, loaded and checked against the model's vocabulary.
#pragma once
#include <memory>
#include <string>

#include "model/model.h"
#include "train/expert_parallel.h"

namespace moe::cli {

struct OpenedModel {
  std::string dir;
  std::unique_ptr<LanguageModel> model;  // a Model (decoder-only), or a T5Model
  // The decoder-only Model, or a one-line error naming the directory and `command`
  // (the commands and options that T5 models do not have yet).
  Model& decoder_only(const std::string& command) const;
};

// split: the experts to load (expert parallelism; the default: all). A t5 directory
// opens as a T5Model (no expert split).
OpenedModel open_model(const std::string& path, ExpertSplit split = {});

// The expert groups of `--expert-parallel EP` over mpirun's ranks (null for EP = 1);
// a usage error when EP does not divide the ranks.
std::unique_ptr<ExpertGroups> expert_groups_for(int EP);

// The checks of open_model on a directory that is read without loading a Model
// (moe upcycle streams it): the tokenizer.model beside config.json, when present.
void check_model_tokenizer(const std::string& dir, int vocab_size);

}  // namespace moe::cli
