// Opening a model directory for a command: the directory resolved (a run directory gives
// its newest complete checkpoint), config.json validated and checked against memory,
// the model loaded by its family (every tensor checked: shape, finiteness), and the
// tokenizer.model beside it, when there is one, loaded and checked against the vocabulary.
#pragma once
#include <memory>
#include <string>

#include "model/lm.h"

namespace moe {

struct OpenedModel {
  std::string dir;
  std::unique_ptr<LanguageModel> model;  // built by its family (model/arch.h)
};

// split: the experts to load and the group holding the others (expert parallelism;
// the default: all), refused for a family without it.
OpenedModel open_model(const std::string& path, ExpertSplit split = {});

}  // namespace moe
