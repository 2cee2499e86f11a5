// Everything that defines a training run. Saved in trainer_state.json so that a
// resumed run continues with exactly the same settings.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/lm.h"

namespace moe {

struct TrainConfig {
  std::string data_dir;      // dataset directory (moe data)
  std::string out_dir;       // run directory: checkpoint-N/, log.jsonl
  int steps = 1000;          // total optimizer steps
  int batch = 8;             // B sequences per micro-batch
  int seq = 256;             // T tokens per sequence (moe train: min(256, the model's positions))
  int accum = 1;             // micro-batches per optimizer step
  float lr = 1e-3f;          // peak learning rate
  float min_lr = 1e-4f;      // end of the decay (cosine, wsd)
  int warmup = 100;          // linear warmup steps
  // The learning-rate schedule after the warmup (lr_at): "cosine" to min_lr at the end;
  // "wsd" (warmup-stable-decay) constant lr, then linear to min_lr over the last
  // decay_steps (0: constant to the end); "rsqrt" (T5's inverse square root)
  // lr * sqrt(warmup / (position + 1)).
  std::string schedule = "cosine";
  int decay_steps = 0;       // wsd only
  // A continued schedule (moe train --init CKPT --continue-schedule): this run's step s
  // is position schedule_offset + s of the schedule, whose horizon is schedule_offset +
  // steps; schedule_from names the run it continues. 0 / empty: a fresh schedule.
  int schedule_offset = 0;
  std::string schedule_from;
  float weight_decay = 0.1f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float clip = 1.0f;         // global gradient-norm clip; 0 = off
  Compute compute = Compute::F32;
  float dropout = 0.0f;
  uint64_t seed = 1337;      // weights init and dropout masks
  int eval_every = 100;      // steps between validation runs (0: only at the end)
  int eval_batches = 20;     // validation batches per run
  int save_every = 0;        // steps between checkpoints (0: only at the end)
  double save_minutes = 15;  // also a checkpoint when this many minutes passed since the last (0: off)
  int keep = 2;              // checkpoints kept (the newest)
  int log_every = 10;        // plain progress lines (non-terminal)
  int skip_nonfinite = 0;    // steps with a NaN/Inf loss or gradient skipped (no update) in a row before stopping
  bool recompute = false;    // activation recomputation (bit-identical results: may change on resume)

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j, const std::string& path);
  void validate() const;  // throws std::invalid_argument naming the flag
};

// Learning rate at optimizer step `step` (0-based) of this run: linear warmup to lr
// over the first `warmup` positions, then the schedule; positions count from
// schedule_offset (a continued schedule), the horizon is schedule_offset + steps.
float lr_at(const TrainConfig& c, int step);
// "wsd to 1e-4 over the last 200 steps", for progress lines and model cards.
std::string schedule_describe(const TrainConfig& c);

const char* compute_name(Compute c);
// "f32" | "bf16"; throws otherwise ("auto" is the CLI's, perf/peak.h compute_auto).
Compute compute_parse(const std::string& s);

}  // namespace moe
