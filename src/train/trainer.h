// The training loop: micro-batches with gradient accumulation, global-norm
// clipping, AdamW with warmup + cosine decay, validation every N steps,
// checkpoints every N steps and at the end, log.jsonl, and NaN/Inf detection that
// names the step and the tensor and never saves the bad state.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "dist/comm.h"
#include "model/lm.h"
#include "train/expert_parallel.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/state.h"

namespace moe {

struct TrainRun {
  std::unique_ptr<LanguageModel> model;  // built by its family (model/arch.h)
  std::unique_ptr<AdamW> opt;  // null: fresh moments, made by train()
  TrainerState state;          // step 0 for a new run; config inside
  std::string tokenizer_path;  // copied into every checkpoint
  int stop_at = 0;             // > 0: save a checkpoint and return at this step (resume later)
  // Data parallelism (train/data_parallel.h): the ranks sharing every global batch
  // (null or one rank: this process alone), and ZeRO-1 sharding of the AdamW moments.
  Comm* comm = nullptr;
  bool zero = false;
  // Expert parallelism (train/expert_parallel.h; null: none): the model holds its
  // ranks' part of the experts (experts->split()), and opt the moments of that part.
  std::unique_ptr<ExpertGroups> experts;
};

struct TrainSummary {
  int step = 0;
  float train_loss = 0;     // mean over the last log window
  float val_loss = NAN;     // NAN: not evaluated yet
  int val_step = -1;        // the step val_loss was measured at
  double epochs = 0;        // passes over the training split so far (fractional)
  double tokens_per_s = 0;  // over the whole run (excluding eval and checkpoints)
  std::string checkpoint;   // the last one written
  double peak_rss_bytes = 0; // the process's peak resident memory at the end (VmHWM)
};

// One optimizer update after a backward: the global gradient norm, clipping folded
// into AdamW (torch's clip_grad_norm_ factor), and in bf16 compute the bf16 copy of the
// parameters written in the same pass. Returns the norm before clipping (may be
// non-finite: the caller decides).
double apply_update(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute);
// Its two parts, shared with the data-parallel update (train/data_parallel.h): torch's
// clip_grad_norm_ factor for a norm, and the full AdamW step (with the bf16 copy).
float clip_scale(double norm, float clip);
void adamw_step_full(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float scale, Compute compute);

// Runs `run` to its config's step count (or stop_at). `stop` is polled between
// steps (e.g. set by SIGINT): the run then saves a checkpoint and returns.
TrainSummary train(TrainRun& run, Progress& progress, const std::function<bool()>& stop = {});

}  // namespace moe
