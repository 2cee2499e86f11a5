// Training checkpoints. RUN/checkpoint-N/ is a complete Hugging Face model
// directory (config.json, model.safetensors, tokenizer.model) plus the training
// state: optimizer.safetensors (AdamW moments "exp_avg.<name>", "exp_avg_sq.<name>",
// fp32, in the model's [out, in] layout; metadata "step") and trainer_state.json
// (step, tokens, data cursor, settings; RNG streams derive from seed and step).
// A checkpoint is written into a temporary directory and renamed into place, so a
// crash at any moment leaves the previous checkpoints intact.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "data/loader.h"
#include "model/lm.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace moe {

struct TrainerState {
  int step = 0;          // optimizer steps done
  uint64_t tokens = 0;   // training tokens consumed
  LoaderState loader;    // the training data cursor
  double elapsed = 0;    // seconds of training so far
  float val_loss = NAN;  // the last validation loss
  int val_step = -1;     // the step it was measured at (-1: none yet)
  std::string init_from; // --init checkpoint, when the run started from one
  TrainConfig config;

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& path);
};

// Writes RUN/checkpoint-<step> and removes all but the newest `keep` checkpoints.
// Refuses (throws) when a parameter is NaN/Inf: a bad state is never saved.
// Returns the checkpoint's path.
std::string checkpoint_write(const std::string& run_dir, const LanguageModel& m, const AdamW& opt, const TrainerState& st,
                             const std::string& tokenizer_path, int keep);

// Removes what dead writers left in a run directory: temp checkpoint directories,
// checkpoints being pruned, directories set aside by a commit, the log's temp file
// (only those whose PID is gone). Returns the names removed. Called when a run starts.
std::vector<std::string> run_dir_cleanup(const std::string& run_dir);

TrainerState trainer_state_load(const std::string& checkpoint_dir);
void optimizer_load(AdamW& opt, const LanguageModel& m, const std::string& checkpoint_dir);

}  // namespace moe
