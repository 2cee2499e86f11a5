// How moe train's flags become a run (train()'s TrainRun): a new run's model (a preset,
// a config.json or --init) made MoE by the flags and fitted to its dataset and sequence
// length, with carried moments (--init-optimizer) and data order (--continue-data); a
// resumed run's model, moments and state with the cadence flags it may change. The CLI
// (cli/cmd_train.cpp) parses the flags, locks the run directory and prints.
#pragma once
#include <functional>
#include <string>

#include "data/dataset.h"
#include "model/memory.h"
#include "train/trainer.h"

namespace moe {

struct MoeFlags {  // the MoE flags of a new run
  int experts = 0, top_k = 1;
  std::string layers = "every-other", combine = "renorm", routing = "top-k";
  float capacity = 1.25f, eval_capacity = 2.0f, aux = 0.01f, z = 1e-3f, jitter = 0.0f, expert_dropout = 0.0f,
        router_init_scale = 0.1f, encoder_capacity = 2.0f;
};


struct RunFlags {
  MoeFlags moe;
  TrainConfig cfg;
  std::string preset = "small", family = "llama", config_path, init;
  bool init_optimizer = false, continue_data = false, continue_schedule = false, allow_tokenizer_mismatch = false;
  std::function<bool(const std::string&)> given;  // whether the user gave a flag ("--seq")
};

// Turns a dense config into an MoE one (Llama becomes Mixtral) from the flags.
void apply_moe(ModelConfig& mc, const MoeFlags& o);
MemoryOptions memory_options(const TrainConfig& c);
// The defaults that depend on the model and the run: --seq fits the model's positions,
// --warmup fits the run. Explicit values are checked instead. `note` gets what changed.
void fit_defaults(const RunFlags& f, TrainConfig& c, const ModelConfig& mc, std::string* note);
// Validation must hold at least one batch; say how to get one when it does not.
void check_val_size(const DatasetInfo& ds, const TrainConfig& c);

// A new run into `run` (model, carried moments and loader state, state.config = f.cfg
// fitted); `note` gets the fitted defaults. The ranks' experts: split.
void new_run(RunFlags& f, ExpertSplit split, TrainRun& run, std::string* note);
// A resumed run of f.cfg.out_dir into `run`; returns the checkpoint directory read.
std::string resume_run(const RunFlags& f, ExpertSplit split, TrainRun& run);

}  // namespace moe
