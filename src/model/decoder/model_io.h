// The decoder families' model directories (model/checkpoint.h has the shared pieces).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "io/safetensors.h"
#include "model/decoder/model.h"

namespace moe {

class TensorDir;

// Writes config.json and model.safetensors into the existing directory `dir`,
// each file atomically (a model holding every expert: see ExpertSplit). dtype: F32, BF16 or F16 (HF checkpoints are mostly BF16).
void model_save(const Model& m, const std::string& dir, STDType dtype = STDType::F32);

// Loads the weights of `dir` into m (whose config must match the directory's).
void model_load_weights(Model& m, const std::string& dir);

// config.json + weights of a model directory (of the experts `split` holds: each
// rank reads only its own expert tensors from the mapped file).
std::unique_ptr<Model> model_load(const std::string& dir, ExpertSplit split = {});

// The role and layer of every tensor name of a config's model ('*' names for experts).
struct TensorRole {
  Role role;
  int layer;
};
std::map<std::string, TensorRole> model_roles(const ModelConfig& c);

// Fills every parameter of m from src. source_name maps a parameter name (and its
// role, null when unknown) to the name to read ('*' expanded per expert; empty: leave
// the parameter as it is); null: the same name. The names read are added to `used` when given.
void model_load_params(Model& m, const TensorDir& src,
                       const std::function<std::string(const std::string&, const TensorRole*)>& source_name,
                       std::set<std::string>* used);

// True when HF stores this tensor of m transposed ([in, out]: GPT-2's Conv1D).
bool hf_transposed(const Model& m, const std::string& name);

}  // namespace moe
