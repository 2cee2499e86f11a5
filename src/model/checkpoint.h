// A model checkpoint is a Hugging Face model directory: config.json (HF fields) and
// model.safetensors (HF tensor names and layouts), or a sharded
// model.safetensors.index.json with its shard files. Loading validates every
// tensor against config.json: none missing, none extra, every shape as expected.
#pragma once
#include <memory>
#include <string>

#include "io/safetensors.h"
#include "model/model.h"

namespace moe {

// Writes config.json and model.safetensors into the existing directory `dir`,
// each file atomically. dtype: F32, BF16 or F16 (HF checkpoints are mostly BF16).
void model_save(const Model& m, const std::string& dir, STDType dtype = STDType::F32);

// Loads the weights of `dir` into m (whose config must match the directory's).
void model_load_weights(Model& m, const std::string& dir);

// config.json + weights of a model directory.
std::unique_ptr<Model> model_load(const std::string& dir);

// True when HF stores this tensor of m transposed ([in, out]: GPT-2's Conv1D).
bool hf_transposed(const Model& m, const std::string& name);

// A model directory as given, or, for a training run directory, its newest
// complete checkpoint-N. Throws naming the path when there is neither.
std::string resolve_model_dir(const std::string& path);

}  // namespace moe
