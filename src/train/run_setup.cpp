#include "train/run_setup.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "data/tokenizer_id.h"
#include "io/files.h"
#include "model/arch.h"
#include "model/checkpoint.h"
#include "model/family.h"
#include "model/open.h"
#include "train/eval.h"
#include "train/state.h"

namespace moe {

// Turns a dense config into an MoE one (Llama becomes Mixtral) from the flags.
void apply_moe(ModelConfig& mc, const MoeFlags& o) {
  mc.n_experts = o.experts;
  mc.top_k = o.top_k;
  mc.capacity_factor = o.capacity;
  mc.eval_capacity_factor = o.eval_capacity;
  mc.moe_renormalize = o.combine == "renorm";
  mc.aux_loss_coef = o.aux, mc.z_loss_coef = o.z;
  mc.router_jitter = o.jitter, mc.expert_dropout = o.expert_dropout;
  arch_of(mc).fit_moe(mc, o.top_k != 1, o.routing != "top-k");  // e.g. switch_transformers: top-1, raw gates
  mc.expert_choice = o.routing == "expert-choice";  // T5: the encoder's routing (its decoder's tokens choose)
  mc.enc_capacity_factor = o.encoder_capacity;
  mc.router_init_scale = o.router_init_scale;
  parse_moe_layers(o.layers, &mc.moe_layers, &mc.moe_all_layers);
  if (const char* moe_type = family_of(mc.family).with_experts) mc.family = moe_type;  // llama: mixtral
}

MemoryOptions memory_options(const TrainConfig& c) {
  MemoryOptions mo;
  mo.bf16 = c.compute == Compute::BF16, mo.recompute = c.recompute, mo.B = c.batch, mo.T = c.seq;
  return mo;
}

// The defaults that depend on the model and the run: --seq fits the model's
// positions, --warmup fits the run. Explicit values are checked instead.
// `note` gets what changed, printed once the run is known to start.
void fit_defaults(const RunFlags& f, TrainConfig& c, const ModelConfig& mc, std::string* note) {
  if (!f.given("--seq")) {
    c.seq = std::min(256, mc.n_ctx);
  } else if (c.seq > mc.n_ctx) {
    throw std::invalid_argument("--seq " + std::to_string(c.seq) + " exceeds the model's " + std::to_string(mc.n_ctx) +
                     " positions: give --seq " + std::to_string(mc.n_ctx) + " or less");
  }
  if (c.warmup >= c.schedule_offset + c.steps) {
    if (f.given("--warmup"))
      throw std::invalid_argument("--warmup " + std::to_string(c.warmup) + " is not shorter than --steps " +
                       std::to_string(c.steps) + ": the learning rate would never reach --lr; give a shorter --warmup");
    const int w = c.steps / 10;
    *note = "note: the default warmup (" + std::to_string(c.warmup) + " steps) is not shorter than --steps " +
            std::to_string(c.steps) + ": warmup " + std::to_string(w) + " steps (--warmup sets it)";
    c.warmup = w;
  }
}

// --continue-schedule: this run's learning rate continues the schedule of the run that
// wrote --init where it stood (its step), instead of warming up again: the schedule, peak
// and minimum lr and warmup are that run's unless given here; --steps extends its
// horizon (a wsd decay comes at the end of this run).
void continue_schedule(RunFlags& f) {
  if (f.init.empty()) throw std::invalid_argument("--continue-schedule needs --init");
  const std::string dir = resolve_model_dir(f.init);
  if (!path_exists(dir + "/trainer_state.json"))
    throw std::invalid_argument("--continue-schedule: " + dir + " has no trainer_state.json (not a training checkpoint)");
  const TrainerState prev = trainer_state_load(dir);
  TrainConfig& c = f.cfg;
  if (!f.given("--schedule")) c.schedule = prev.config.schedule;
  if (!f.given("--lr")) c.lr = prev.config.lr;
  if (!f.given("--min-lr")) c.min_lr = prev.config.min_lr;
  if (!f.given("--warmup")) c.warmup = prev.config.warmup;
  c.schedule_offset = prev.config.schedule_offset + prev.step;
  c.schedule_from = dir;
  std::fprintf(stderr, "schedule: continuing %s at its step %d (%s)\n", dir.c_str(), c.schedule_offset,
               c.schedule.c_str());
}

// Validation must hold at least one batch; say how to get one when it does not.
void check_val_size(const DatasetInfo& ds, const TrainConfig& c) {
  const uint64_t need = uint64_t(c.batch) * c.seq + 1;
  if (ds.val_tokens < need)
    throw std::runtime_error("dataset " + ds.dir + ": its validation split has " + std::to_string(ds.val_tokens) +
                             " tokens, fewer than one batch of --batch " + std::to_string(c.batch) + " x --seq " +
                             std::to_string(c.seq) + " (+1); train with a smaller --batch or --seq, or rebuild the "
                             "dataset with a larger --val-fraction (moe data)");
}

void new_run(RunFlags& f, ExpertSplit split, TrainRun& run, std::string* note) {
  DatasetInfo ds = dataset_open(f.cfg.data_dir);
  if (!f.init.empty() && f.given("--experts"))
    throw std::invalid_argument("--experts with --init: upcycle the checkpoint first (moe upcycle)");
  int n_model_flags = (f.given("--preset")) + (!f.config_path.empty()) + (!f.init.empty());
  if (n_model_flags > 1) throw std::invalid_argument("give one of --preset, --config, --init");
  if (!f.init.empty()) {
    OpenedModel opened = open_model(f.init, split);
    run.model = std::move(opened.model);
    run.state.init_from = opened.dir;
    if (!f.allow_tokenizer_mismatch)
      tokenizer_check(opened.dir, ds.tokenizer_sha256, "dataset " + ds.dir,
                      "build the dataset with moe data --tokenizer " + opened.dir + "/tokenizer.model",
                      "--allow-tokenizer-mismatch");
  } else {
    ModelConfig mc = f.config_path.empty() ? model_preset(f.family, f.preset, int(ds.vocab_size))
                                           : config_load(f.config_path);
    if (f.moe.experts > 0) apply_moe(mc, f.moe);
    if (ds.bos_id >= 0) mc.bos_id = ds.bos_id;
    if (ds.eos_id >= 0) mc.eos_id = ds.eos_id;
    arch_of(mc).fit_dataset(mc, ds.pad_id);  // T5: the decoder starts with pad
    mc.validate();
    fit_defaults(f, f.cfg, mc, note);
    f.cfg.validate();
    arch_of(mc).fit_seq(mc, f.cfg.seq, f.moe.capacity);  // switch_transformers: expert_capacity per sequence
    mc.validate();
    model_check_memory(mc, memory_options(f.cfg), f.config_path.empty() ? "--preset " + f.preset : f.config_path);
    if (split.partial()) family_require(mc, Capability::ExpertParallel);
    run.model = arch_of(mc).build(mc, BuildArgs{true, split});
    run.model->init_weights(f.cfg.seed);
  }
  if (f.continue_schedule) continue_schedule(f);
  if (!f.init.empty()) {
    fit_defaults(f, f.cfg, run.model->config(), note);
    f.cfg.validate();
    // The weights are in; the gradients, moments and activations are not yet.
    model_check_memory(run.model->config(), memory_options(f.cfg), f.init);
  }
  check_val_size(ds, f.cfg);
  // Fresh moments are made by train() (only this rank's shard under --zero 1).
  if (f.init_optimizer) {
    if (f.init.empty()) throw std::invalid_argument("--init-optimizer needs --init");
    run.opt = std::make_unique<AdamW>(run.model->layout());
    const std::string dir = resolve_model_dir(f.init);
    if (!path_exists(dir + "/optimizer.safetensors"))
      throw std::invalid_argument("--init-optimizer: " + dir + " has no optimizer.safetensors");
    optimizer_load(*run.opt, *run.model, dir);
    std::fprintf(stderr, "optimizer: AdamW moments from %s/optimizer.safetensors (step %d)\n", dir.c_str(),
                 run.opt->t());
  }
  if (f.continue_data) {
    if (f.init.empty()) throw std::invalid_argument("--continue-data needs --init");
    const std::string dir = resolve_model_dir(f.init);
    if (!path_exists(dir + "/trainer_state.json"))
      throw std::invalid_argument("--continue-data: " + dir + " has no trainer_state.json (not a training checkpoint)");
    const TrainerState prev = trainer_state_load(dir);
    namespace fs = std::filesystem;
    if (fs::weakly_canonical(prev.config.data_dir) != fs::weakly_canonical(f.cfg.data_dir))
      throw std::invalid_argument("--continue-data: " + dir + " was trained on " + prev.config.data_dir +
                                  ", not on " + f.cfg.data_dir);
    if (prev.config.seed != f.cfg.seed || prev.config.seq != f.cfg.seq)
      throw std::invalid_argument("--continue-data: " + dir + " ran with --seed " + std::to_string(prev.config.seed) +
                                  " --seq " + std::to_string(prev.config.seq) +
                                  "; give the same (the data order depends on both)");
    run.state.loader = prev.loader;
    std::fprintf(stderr, "data: continuing where %s stopped (epoch %llu)\n", dir.c_str(),
                 (unsigned long long)prev.loader.epoch);
  }
  if (f.cfg.dropout > 0) family_require(run.model->config(), Capability::Dropout);
  if (f.cfg.recompute) family_require(run.model->config(), Capability::Recompute);
  check_dataset_for(ds, run.model->config());  // before anything is printed or made
  run.state.config = f.cfg;
}

std::string resume_run(const RunFlags& f, ExpertSplit split, TrainRun& run) {
  OpenedModel opened = open_model(f.cfg.out_dir, split);
  const std::string dir = opened.dir;
  run.model = std::move(opened.model);
  run.opt = std::make_unique<AdamW>(run.model->layout());
  optimizer_load(*run.opt, *run.model, dir);
  run.state = trainer_state_load(dir);
  TrainConfig& c = run.state.config;
  if (f.given("--steps") && f.cfg.steps != c.steps) {
    // The schedule is a function of the total steps (the cosine's length, the wsd decay's
    // start): a new total changes the learning rate of the steps still to come.
    const int at = run.state.step;
    const float before = lr_at(c, at);
    TrainConfig n = c;
    n.steps = f.cfg.steps;
    std::fprintf(stderr, "note: the learning-rate schedule was for %d steps; --steps %d re-fits it (%s): lr at "
                 "step %d %.3g -> %.3g\n", c.steps, n.steps, schedule_describe(n).c_str(), at + 1, before,
                 lr_at(n, at));
    c.steps = f.cfg.steps;
  }
  if (f.given("--eval-every")) c.eval_every = f.cfg.eval_every;
  if (f.given("--save-every")) c.save_every = f.cfg.save_every;
  if (f.given("--save-minutes")) c.save_minutes = f.cfg.save_minutes;
  if (f.given("--keep")) c.keep = f.cfg.keep;
  if (f.given("--log-every")) c.log_every = f.cfg.log_every;
  if (f.given("--skip-nonfinite")) c.skip_nonfinite = f.cfg.skip_nonfinite;
  if (f.given("--recompute")) c.recompute = f.cfg.recompute;  // bit-identical either way
  c.out_dir = f.cfg.out_dir;
  if (run.state.step >= c.steps)
    throw std::invalid_argument("--steps " + std::to_string(c.steps) + ": " + dir + " is already at step " +
                     std::to_string(run.state.step) + "; give a larger --steps to continue");
  return dir;
}

}  // namespace moe
