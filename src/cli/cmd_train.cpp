// moe train: train a dense model from scratch (preset or config.json), from a
// checkpoint's weights (--init), or continue a run exactly (--resume).
#include <csignal>
#include <filesystem>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/model_open.h"
#include "cli/train_plan.h"
#include "data/dataset.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/memory.h"
#include "train/state.h"
#include "train/trainer.h"

namespace moe::cli {

void parse_moe_layers(const std::string& spec, std::vector<int>* layers, bool* all) {
  layers->clear();
  *all = spec == "all";
  if (spec == "all" || spec == "every-other") return;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int l = std::stoi(item, &used);
      if (used != item.size() || l < 0) throw std::invalid_argument(item);
      layers->push_back(l);
    } catch (const std::exception&) {
      throw std::invalid_argument("--moe-layers must be every-other, all, or a comma list of layer indices; got \"" +
                                  spec + "\"");
    }
  }
}

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

struct MoeOpts {
  int experts = 0, top_k = 1;
  std::string layers = "every-other", combine = "renorm", routing = "top-k";
  float capacity = 1.25f, eval_capacity = 2.0f, aux = 0.01f, z = 1e-3f, jitter = 0.0f, expert_dropout = 0.0f,
        router_init_scale = 0.1f;
};

struct TrainOpts {
  MoeOpts moe;
  TrainConfig cfg;
  std::string preset = "small", family = "llama", config_path, init, compute = "f32";
  bool resume = false, init_optimizer = false, continue_data = false, plan = false;
  int stop_at = 0;
  int ranks = 1, expert_parallel = 1, zero = 0;  // --plan's distributed layout
};

// Options that define the run: fixed once it started (trainer_state.json holds them).
const char* kFixedOnResume[] = {"--data", "--preset", "--family", "--config", "--init", "--init-optimizer", "--continue-data", "--batch", "--seq",
                                "--accum", "--lr", "--min-lr", "--warmup", "--weight-decay", "--clip",
                                "--compute", "--dropout", "--seed", "--experts", "--top-k", "--moe-layers",
                                "--capacity-factor", "--eval-capacity-factor", "--combine", "--aux-coef",
                                "--z-coef", "--router-jitter", "--expert-dropout", "--routing",
                                "--router-init-scale"};

// Turns a dense config into an MoE one (Llama becomes Mixtral) from the flags.
void apply_moe(ModelConfig& mc, const MoeOpts& o) {
  mc.n_experts = o.experts;
  mc.top_k = o.top_k;
  mc.capacity_factor = o.capacity;
  mc.eval_capacity_factor = o.eval_capacity;
  mc.moe_renormalize = o.combine == "renorm";
  mc.aux_loss_coef = o.aux, mc.z_loss_coef = o.z;
  mc.router_jitter = o.jitter, mc.expert_dropout = o.expert_dropout;
  mc.expert_choice = o.routing == "expert-choice";
  mc.router_init_scale = o.router_init_scale;
  parse_moe_layers(o.layers, &mc.moe_layers, &mc.moe_all_layers);
  if (mc.family == "llama") mc.family = "mixtral";
}

MemoryOptions memory_options(const TrainConfig& c) {
  MemoryOptions mo;
  mo.bf16 = c.compute == Compute::BF16, mo.recompute = c.recompute, mo.B = c.batch, mo.T = c.seq;
  return mo;
}

// After a new run failed: when no checkpoint was written, removes the run directory
// if this command created it, else the log.jsonl it created.
void remove_failed_run(const std::string& out, bool out_existed, bool log_existed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(out, ec))
    for (const auto& e : fs::directory_iterator(out, ec))
      if (checkpoint_dir_step(e.path().filename().string()) >= 0) return;  // keep a run that saved something
  if (!out_existed) remove_tree(out);
  else if (!log_existed) fs::remove(out + "/log.jsonl", ec);
}

// --plan: the memory estimate per rank of the run these flags describe; no training.
void run_plan(CLI::App* sub, TrainOpts& o) {
  MemoryOptions mo;
  ModelConfig mc;
  std::string what;
  const bool recompute_given = sub->get_option("--recompute")->count() > 0;
  if (o.resume) {
    if (o.cfg.out_dir.empty()) throw CLI::RequiredError("--out");
    const std::string dir = resolve_model_dir(o.cfg.out_dir);
    mc = config_load(dir + "/config.json");
    const TrainConfig c = trainer_state_load(dir).config;
    mo.B = c.batch, mo.T = c.seq, mo.bf16 = c.compute == Compute::BF16;
    mo.recompute = recompute_given ? o.cfg.recompute : c.recompute;
    what = dir;
  } else {
    if (!o.init.empty()) {
      mc = config_load(resolve_model_dir(o.init) + "/config.json"), what = o.init;
    } else if (!o.config_path.empty()) {
      mc = config_load(o.config_path), what = o.config_path;
    } else {
      if (o.cfg.data_dir.empty()) throw CLI::RequiredError("--data (the vocabulary of a --preset is the dataset's)");
      mc = model_preset(o.family, o.preset, int(dataset_open(o.cfg.data_dir).vocab_size)), what = "--preset " + o.preset;
    }
    if (o.moe.experts > 0) apply_moe(mc, o.moe);
    mc.validate();
    mo.B = o.cfg.batch, mo.T = o.cfg.seq, mo.bf16 = compute_parse(o.compute) == Compute::BF16;
    mo.recompute = o.cfg.recompute;
  }
  const int P = o.ranks, EP = o.expert_parallel;
  if (P % EP) throw CLI::ValidationError("--expert-parallel", std::to_string(EP) + " must divide --ranks " + std::to_string(P));
  if (EP > 1 && !mc.is_moe()) throw CLI::ValidationError("--expert-parallel", "needs an MoE model (--experts)");
  if (EP > 1 && mc.n_experts % EP)
    throw CLI::ValidationError("--expert-parallel", std::to_string(EP) + " must divide the " + std::to_string(mc.n_experts) + " experts");
  if (mo.B % P)
    throw CLI::ValidationError("--batch", std::to_string(mo.B) + " (the global batch) must be a multiple of --ranks " + std::to_string(P));
  mo.ranks = P, mo.expert_parallel = EP, mo.zero = o.zero;
  print_train_plan(mc, what, mo);
}

void run_train(CLI::App* sub, TrainOpts& o) {
  if (o.plan) return run_plan(sub, o);
  for (const char* flag : {"--ranks", "--expert-parallel", "--zero"})
    if (sub->get_option(flag)->count() > 0)
      throw CLI::ValidationError(flag, "only with --plan (this build trains on one process)");
  if (o.cfg.out_dir.empty()) throw CLI::RequiredError("--out");
  const bool out_existed = path_exists(o.cfg.out_dir), log_existed = path_exists(o.cfg.out_dir + "/log.jsonl");
  TrainRun run;
  if (o.resume) {
    for (const char* flag : kFixedOnResume)
      if (sub->get_option(flag)->count() > 0)
        throw std::invalid_argument(std::string(flag) + " cannot change when resuming (the run's settings are in "
                                    "its trainer_state.json); only --steps and the eval/save/log cadence can");
    OpenedModel opened = open_model(o.cfg.out_dir);
    const std::string dir = opened.dir;
    run.model = std::move(opened.model);
    run.opt = std::make_unique<AdamW>(run.model->layout());
    optimizer_load(*run.opt, *run.model, dir);
    run.state = trainer_state_load(dir);
    TrainConfig& c = run.state.config;
    if (sub->get_option("--steps")->count() > 0) c.steps = o.cfg.steps;
    if (sub->get_option("--eval-every")->count() > 0) c.eval_every = o.cfg.eval_every;
    if (sub->get_option("--save-every")->count() > 0) c.save_every = o.cfg.save_every;
    if (sub->get_option("--keep")->count() > 0) c.keep = o.cfg.keep;
    if (sub->get_option("--log-every")->count() > 0) c.log_every = o.cfg.log_every;
    if (sub->get_option("--skip-nonfinite")->count() > 0) c.skip_nonfinite = o.cfg.skip_nonfinite;
    if (sub->get_option("--recompute")->count() > 0) c.recompute = o.cfg.recompute;  // bit-identical either way
    c.out_dir = o.cfg.out_dir;
    if (run.state.step >= c.steps)
      throw std::invalid_argument(dir + " is at step " + std::to_string(run.state.step) +
                                  ": give a larger --steps to continue");
    std::fprintf(stderr, "resuming %s at step %d of %d\n", dir.c_str(), run.state.step, c.steps);
  } else {
    if (o.cfg.data_dir.empty()) throw std::invalid_argument("--data is required (a dataset made by moe data)");
    if (path_exists(o.cfg.out_dir)) {
      try {
        resolve_model_dir(o.cfg.out_dir);
        throw std::invalid_argument(o.cfg.out_dir + " already holds a run: use --resume, or another --out");
      } catch (const std::runtime_error&) {  // no checkpoint inside: fine to use
      }
    }
    o.cfg.compute = compute_parse(o.compute);
    o.cfg.validate();
    DatasetInfo ds = dataset_open(o.cfg.data_dir);
    if (!o.init.empty() && sub->get_option("--experts")->count() > 0)
      throw std::invalid_argument("--experts with --init: upcycle the checkpoint first (moe upcycle)");
    int n_model_flags = (sub->get_option("--preset")->count() > 0) + (!o.config_path.empty()) + (!o.init.empty());
    if (n_model_flags > 1) throw std::invalid_argument("give one of --preset, --config, --init");
    if (!o.init.empty()) {
      OpenedModel opened = open_model(o.init);
      run.model = std::move(opened.model);
      run.state.init_from = opened.dir;
    } else {
      ModelConfig mc = o.config_path.empty() ? model_preset(o.family, o.preset, int(ds.vocab_size))
                                             : config_load(o.config_path);
      if (o.moe.experts > 0) apply_moe(mc, o.moe);
      if (ds.bos_id >= 0) mc.bos_id = ds.bos_id;
      if (ds.eos_id >= 0) mc.eos_id = ds.eos_id;
      mc.validate();
      model_check_memory(mc, memory_options(o.cfg), o.config_path.empty() ? "--preset " + o.preset : o.config_path);
      run.model = std::make_unique<Model>(mc);
      run.model->init_weights(o.cfg.seed);
    }
    if (!o.init.empty())  // the weights are in; the gradients, moments and activations are not yet
      model_check_memory(run.model->config(), memory_options(o.cfg), o.init);
    run.opt = std::make_unique<AdamW>(run.model->layout());
    if (o.init_optimizer) {
      if (o.init.empty()) throw std::invalid_argument("--init-optimizer needs --init");
      const std::string dir = resolve_model_dir(o.init);
      if (!path_exists(dir + "/optimizer.safetensors"))
        throw std::invalid_argument("--init-optimizer: " + dir + " has no optimizer.safetensors");
      optimizer_load(*run.opt, *run.model, dir);
      std::fprintf(stderr, "optimizer: AdamW moments from %s/optimizer.safetensors (step %d)\n", dir.c_str(),
                   run.opt->t());
    }
    if (o.continue_data) {
      if (o.init.empty()) throw std::invalid_argument("--continue-data needs --init");
      const std::string dir = resolve_model_dir(o.init);
      if (!path_exists(dir + "/trainer_state.json"))
        throw std::invalid_argument("--continue-data: " + dir + " has no trainer_state.json (not a training checkpoint)");
      const TrainerState prev = trainer_state_load(dir);
      namespace fs = std::filesystem;
      if (fs::weakly_canonical(prev.config.data_dir) != fs::weakly_canonical(o.cfg.data_dir))
        throw std::invalid_argument("--continue-data: " + dir + " was trained on " + prev.config.data_dir +
                                    ", not on " + o.cfg.data_dir);
      if (prev.config.seed != o.cfg.seed || prev.config.seq != o.cfg.seq)
        throw std::invalid_argument("--continue-data: " + dir + " ran with --seed " + std::to_string(prev.config.seed) +
                                    " --seq " + std::to_string(prev.config.seq) +
                                    "; give the same (the data order depends on both)");
      run.state.loader = prev.loader;
      std::fprintf(stderr, "data: continuing where %s stopped (epoch %llu)\n", dir.c_str(),
                   (unsigned long long)prev.loader.epoch);
    }
    run.state.config = o.cfg;
  }
  run.stop_at = o.stop_at;
  const TrainConfig& c = run.state.config;
  run.tokenizer_path = dataset_open(c.data_dir).tokenizer_path;
  const ModelConfig& mc = run.model->config();
  std::fprintf(stderr, "model: %s, %d layers, C=%d, %d heads (%d kv), F=%d, V=%d, %.2fM parameters\n",
               mc.family.c_str(), mc.n_layer, mc.n_embd, mc.n_head, mc.n_kv_head, mc.n_inner, mc.vocab_size,
               double(run.model->num_params()) / 1e6);
  if (mc.is_moe()) {
    std::string layers;
    for (int l = 0; l < mc.n_layer; l++)
      if (mc.moe_layer(l)) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    std::fprintf(stderr, "moe: %d experts, top-%d (%s), capacity factor %.2f train / %.2f eval (<= 0: dropless), "
                 "layers %s, aux %.3g, z %.3g\n", mc.n_experts, mc.top_k, mc.moe_renormalize ? "renormalised" : "raw gates",
                 mc.capacity_factor, mc.eval_capacity_factor, layers.c_str(), mc.aux_loss_coef, mc.z_loss_coef);
  }
  std::fprintf(stderr, "training: %d steps of %d x %d tokens x %d, lr %.2g (warmup %d, cosine to %.2g), %s\n",
               c.steps, c.batch, c.seq, c.accum, c.lr, c.warmup, c.min_lr, compute_name(c.compute));
  Progress progress(c.steps, c.log_every);
  g_interrupted = 0;
  auto old = std::signal(SIGINT, on_sigint);
  TrainSummary s;
  try {
    s = train(run, progress, [] { return g_interrupted != 0; });
  } catch (...) {
    std::signal(SIGINT, old);
    // A new run that failed before its first checkpoint leaves nothing behind: what
    // it made (the run directory, or its log in a directory that was there) goes.
    if (!o.resume) remove_failed_run(c.out_dir, out_existed, log_existed);
    throw;
  }
  std::signal(SIGINT, old);
  std::printf("step %d: train loss %.4f, val loss %.4f, %.0f tokens/s; checkpoint %s\n", s.step, s.train_loss,
              s.val_loss, s.tokens_per_s, s.checkpoint.c_str());
  std::printf("peak memory: %s resident (VmHWM), recompute %s\n", bytes_human(s.peak_rss_bytes).c_str(),
              c.recompute ? "on" : "off");
  if (g_interrupted) {
    std::fprintf(stderr, "interrupted: resume with  moe train --out %s --resume\n", c.out_dir.c_str());
    set_exit_code(130);
  }
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<TrainOpts>();
  TrainConfig& c = o->cfg;
  CLI::App* sub = app.add_subcommand("train", "Train a dense or MoE model (from scratch, --init CKPT, or --resume)");
  sub->add_option("--data", c.data_dir, "dataset directory made by `moe data`");
  sub->add_option("--out", c.out_dir, "run directory: checkpoint-N/ and log.jsonl (required, except for --plan)");
  sub->add_flag("--resume", o->resume, "continue the run in --out from its newest checkpoint, exactly");
  sub->add_option("--preset", o->preset, "model size: tiny | small")->check(CLI::IsMember({"tiny", "small"}));
  sub->add_option("--family", o->family, "model family: llama | gpt2")->check(CLI::IsMember({"llama", "gpt2"}));
  sub->add_option("--config", o->config_path, "a Hugging Face config.json instead of a preset")
      ->check(CLI::ExistingFile);
  sub->add_option("--init", o->init, "start from this checkpoint's weights (fresh optimizer)");
  sub->add_flag("--continue-data", o->continue_data,
                "with --init: continue the data order where that checkpoint's run stopped (same dataset)");
  sub->add_flag("--init-optimizer", o->init_optimizer,
                "with --init: also its AdamW moments and step (e.g. from moe upcycle --carry-optimizer)");
  sub->add_option("--steps", c.steps, "total optimizer steps")->check(CLI::Range(1, 100000000));
  sub->add_option("--batch", c.batch, "sequences per micro-batch")->check(CLI::Range(1, 65536));
  sub->add_option("--seq", c.seq, "tokens per sequence")->check(CLI::Range(2, 1 << 20));
  sub->add_option("--accum", c.accum, "micro-batches per step (gradient accumulation)")->check(CLI::Range(1, 4096));
  sub->add_option("--lr", c.lr, "peak learning rate")->check(CLI::Range(1e-9, 10.0));
  sub->add_option("--min-lr", c.min_lr, "learning rate at the end of the cosine decay")->check(CLI::Range(0.0, 10.0));
  sub->add_option("--warmup", c.warmup, "linear warmup steps")->check(CLI::Range(0, 100000000));
  sub->add_option("--weight-decay", c.weight_decay, "AdamW weight decay (matrices only)")->check(CLI::Range(0.0, 10.0));
  sub->add_option("--clip", c.clip, "global gradient-norm clip (0: off)")->check(CLI::Range(0.0, 1e9));
  sub->add_option("--compute", o->compute, "f32 | bf16 (bf16 GEMMs, fp32 master weights)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  sub->add_option("--dropout", c.dropout, "dropout on embeddings and residual branches")->check(CLI::Range(0.0, 0.99));
  sub->add_option("--seed", c.seed, "seed of the weights and dropout masks");
  sub->add_option("--eval-every", c.eval_every, "steps between validation runs (0: at the end)")
      ->check(CLI::Range(0, 100000000));
  sub->add_option("--eval-batches", c.eval_batches, "validation batches per run")->check(CLI::Range(1, 1000000));
  sub->add_option("--save-every", c.save_every, "steps between checkpoints (0: at the end)")
      ->check(CLI::Range(0, 100000000));
  sub->add_option("--keep", c.keep, "checkpoints to keep")->check(CLI::Range(1, 100000));
  sub->add_option("--log-every", c.log_every, "steps between plain progress lines")->check(CLI::Range(1, 100000000));
  MoeOpts& m = o->moe;
  sub->add_option("--experts", m.experts, "MoE: experts per MoE layer (0: dense)")->check(CLI::Range(0, 4096));
  sub->add_option("--top-k", m.top_k, "MoE: experts per token (1: Switch)")->check(CLI::Range(1, 4096));
  sub->add_option("--moe-layers", m.layers, "MoE: every-other (default) | all | a list like 1,3");
  sub->add_option("--capacity-factor", m.capacity, "MoE: training capacity factor (0: dropless)")
      ->check(CLI::Range(0.0, 1000.0));
  sub->add_option("--eval-capacity-factor", m.eval_capacity, "MoE: evaluation capacity factor (0: dropless)")
      ->check(CLI::Range(0.0, 1000.0));
  sub->add_option("--combine", m.combine, "MoE: renorm (Mixtral) | raw (Switch gates)")
      ->check(CLI::IsMember({"renorm", "raw"}));
  sub->add_option("--aux-coef", m.aux, "MoE: load-balancing loss coefficient")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--z-coef", m.z, "MoE: router z-loss coefficient")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--routing", m.routing, "MoE: top-k (tokens choose) | expert-choice (refused: not causal)")
      ->check(CLI::IsMember({"top-k", "expert-choice"}));
  sub->add_option("--router-init-scale", m.router_init_scale,
                  "MoE: router init std sqrt(s / C); Switch's 0.1 by default, 1.0 the usual")
      ->check(CLI::Range(1e-6, 100.0));
  sub->add_option("--router-jitter", m.jitter, "MoE: router input noise, x * U[1-j, 1+j] (training)")
      ->check(CLI::Range(0.0, 0.99));
  sub->add_option("--expert-dropout", m.expert_dropout, "MoE: dropout inside the experts (training)")
      ->check(CLI::Range(0.0, 0.99));
  sub->add_option("--skip-nonfinite", c.skip_nonfinite,
                  "steps with a NaN/Inf loss or gradient to skip in a row (no update, logged) before stopping; "
                  "0: stop at the first (default)")
      ->check(CLI::Range(0, 1000000));
  sub->add_flag("--recompute,!--no-recompute", c.recompute,
                "recompute each layer's activations in the backward (less memory, ~1 more forward of time; "
                "bit-identical results, so it may change on --resume)");
  sub->add_flag("--plan", o->plan, "print the memory estimate per rank for these flags and exit (no training)");
  sub->add_option("--ranks", o->ranks, "--plan: ranks P = data-parallel x expert-parallel (default 1)")
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--expert-parallel", o->expert_parallel, "--plan: ranks EP that split each MoE layer's experts")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--zero", o->zero, "--plan: 1 shards the AdamW moments over the data-parallel ranks (ZeRO-1)")
      ->check(CLI::Range(0, 1));
  sub->add_option("--stop-at", o->stop_at, "save and stop at this step (resume later with --resume)")
      ->check(CLI::Range(1, 100000000));
  sub->callback([sub, o] { run_train(sub, *o); });
}

}  // namespace moe::cli
