// A model checkpoint is a Hugging Face model directory: config.json (HF fields) and
// model.safetensors (HF tensor names and layouts), or a sharded
// model.safetensors.index.json with its shard files. Loading validates every
// tensor against config.json: none missing, none extra, every shape as expected.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/model.h"

namespace moe {

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

class TensorDir;
// Reads HF tensor `name` of src into dst (float32, our shape `want`; HF-transposed
// when tr). Throws naming the file and tensor on absence (with `why`), a wrong shape
// or a dtype other than F32/BF16/F16.
void read_hf_tensor(const TensorDir& src, const std::string& name, std::vector<int64_t> want, bool tr, float* dst,
                    const std::string& why);
// Fills every parameter of m from src. source_name maps a parameter name (and its
// role, null when unknown) to the name to read ('*' expanded per expert; empty: leave
// the parameter as it is); null: the same name. The names read are added to `used` when given.
void model_load_params(Model& m, const TensorDir& src,
                       const std::function<std::string(const std::string&, const TensorRole*)>& source_name,
                       std::set<std::string>* used);

// True when HF stores this tensor of m transposed ([in, out]: GPT-2's Conv1D).
bool hf_transposed(const Model& m, const std::string& name);

// A model directory as given, or, for a training run directory, its newest
// complete checkpoint-N. Throws naming the path when there is neither, and when the
// directory given is itself an incomplete checkpoint.
std::string resolve_model_dir(const std::string& path);

// N for a directory name "checkpoint-N" (digits only), else -1.
long checkpoint_dir_step(const std::string& name);
// The first file a complete checkpoint needs that `dir` lacks, or "" when complete.
// Every model directory needs config.json and its weights; a training checkpoint
// (a checkpoint-N directory) also optimizer.safetensors and
// trainer_state.json.
std::string checkpoint_missing(const std::string& dir);

}  // namespace moe
