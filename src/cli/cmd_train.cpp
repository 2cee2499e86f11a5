// moe train: train a dense model from scratch (preset or config.json), from a
// checkpoint's weights (--init), or continue a run exactly (--resume).
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dist/comm.h"
#include "cli/model_open.h"
#include "cli/recipe.h"
#include "cli/train_plan.h"
#include "data/dataset.h"
#include "data/tokenizer_id.h"
#include "io/files.h"
#include "io/signals.h"
#include "model/checkpoint.h"
#include "model/arch.h"
#include "model/describe.h"
#include "model/family.h"
#include "model/memory.h"
#include "tensor/cpu.h"
#include "train/eval.h"
#include "train/state.h"
#include "train/run_setup.h"
#include "train/trainer.h"

namespace moe::cli {

namespace {

struct TrainOpts {
  MoeFlags moe;
  TrainConfig cfg;
  std::string preset = "small", family = "llama", config_path, init, compute = "f32", recipe;
  std::string compute_why;  // --compute auto: what it chose and why
  bool resume = false, init_optimizer = false, continue_data = false, continue_schedule = false,
       allow_tokenizer_mismatch = false, plan = false;
  int stop_at = 0;
  int ranks = 1, expert_parallel = 1;  // --plan's distributed layout (under mpirun: the real one)
  int zero = 0;
};

// Options that define the run: fixed once it started (trainer_state.json holds them).
const char* kFixedOnResume[] = {"--data", "--preset", "--family", "--config", "--init", "--init-optimizer", "--continue-data", "--batch", "--seq",
                                "--accum", "--lr", "--min-lr", "--warmup", "--schedule", "--decay-steps",
                                "--continue-schedule", "--weight-decay", "--clip",
                                "--compute", "--dropout", "--seed", "--experts", "--top-k", "--moe-layers",
                                "--capacity-factor", "--eval-capacity-factor", "--combine", "--aux-coef",
                                "--z-coef", "--router-jitter", "--expert-dropout", "--routing",
                                "--router-init-scale", "--encoder-capacity-factor"};

// After a new run failed: when no checkpoint was written, removes the run directory
// if this command created it, else the log.jsonl it created.
// One writer per run directory: a second moe train on the same --out (new or resumed)
// is refused while the first lives, instead of mixing their recipes, checkpoints and logs.
void lock_run(const std::string& out) {
  if (!dir_lock(out))
    throw UsageError("--out " + out + ": another moe train is writing this run (wait for it to end, or give "
                     "another --out)");
}

void remove_failed_run(const std::string& out, bool out_existed, bool log_existed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(out, ec))
    for (const auto& e : fs::directory_iterator(out, ec))
      if (checkpoint_dir_step(e.path().filename().string()) >= 0) return;  // keep a run that saved something
  if (!out_existed) remove_tree(out);
  else if (!log_existed) fs::remove(out + "/log.jsonl", ec);
}

// The run-defining flags (train/run_setup.h), with which of them the user gave.
RunFlags flags(CLI::App* sub, const TrainOpts& o) {
  RunFlags f;
  f.moe = o.moe, f.cfg = o.cfg, f.preset = o.preset, f.family = o.family, f.config_path = o.config_path;
  f.init = o.init, f.init_optimizer = o.init_optimizer, f.continue_data = o.continue_data;
  f.continue_schedule = o.continue_schedule, f.allow_tokenizer_mismatch = o.allow_tokenizer_mismatch;
  f.given = [sub](const std::string& flag) { return sub->get_option(flag)->count() > 0; };
  return f;
}

// The recipe that reproduces a new run: every training flag with its final value
// (fitted defaults included), model flags as given.
nlohmann::ordered_json make_recipe(const TrainOpts& o, const TrainConfig& c) {
  nlohmann::ordered_json r;
  r["data"] = c.data_dir;
  if (!o.init.empty()) r["init"] = o.init;
  else if (!o.config_path.empty()) r["config"] = o.config_path;
  else r["preset"] = o.preset, r["family"] = o.family;
  if (o.init_optimizer) r["init-optimizer"] = true;
  if (o.continue_data) r["continue-data"] = true;
  if (o.continue_schedule) r["continue-schedule"] = true;
  r["steps"] = c.steps, r["batch"] = c.batch, r["seq"] = c.seq, r["accum"] = c.accum;
  r["lr"] = recipe_number(c.lr), r["min-lr"] = recipe_number(c.min_lr), r["warmup"] = c.warmup;
  r["schedule"] = c.schedule, r["decay-steps"] = c.decay_steps;
  r["weight-decay"] = recipe_number(c.weight_decay), r["clip"] = recipe_number(c.clip);
  r["compute"] = compute_name(c.compute), r["dropout"] = recipe_number(c.dropout), r["seed"] = c.seed;
  r["eval-every"] = c.eval_every, r["eval-batches"] = c.eval_batches, r["save-every"] = c.save_every;
  r["save-minutes"] = c.save_minutes, r["keep"] = c.keep, r["log-every"] = c.log_every;
  r["skip-nonfinite"] = c.skip_nonfinite, r["zero"] = o.zero, r["recompute"] = c.recompute;
  if (o.moe.experts > 0) {
    const MoeFlags& m = o.moe;
    r["experts"] = m.experts, r["top-k"] = m.top_k, r["moe-layers"] = m.layers, r["combine"] = m.combine;
    r["capacity-factor"] = recipe_number(m.capacity), r["eval-capacity-factor"] = recipe_number(m.eval_capacity);
    r["aux-coef"] = recipe_number(m.aux), r["z-coef"] = recipe_number(m.z), r["routing"] = m.routing;
    r["encoder-capacity-factor"] = recipe_number(m.encoder_capacity);
    r["router-init-scale"] = recipe_number(m.router_init_scale), r["router-jitter"] = recipe_number(m.jitter);
    r["expert-dropout"] = recipe_number(m.expert_dropout);
  }
  return r;
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
    mo.B = o.cfg.batch, mo.T = o.cfg.seq, mo.bf16 = compute_from_flag(o.compute) == Compute::BF16;
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

// What the run is, on stderr before it starts: the fitted defaults, the model, its MoE
// layers, how rows are made, the schedule and precision, the CPU and the layout.
void print_run(const TrainRun& run, const DatasetInfo& ds, const TrainOpts& o, const std::string& note) {
  const TrainConfig& c = run.state.config;
  if (!note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
  const ModelConfig& mc = run.model->config();
  const ConfigText text = describe_config(mc, double(run.model->num_params()));
  std::fprintf(stderr, "%s\n", text.train_model.c_str());
  if (mc.is_moe()) {
    std::string layers;
    for (int l = 0; l < mc.n_layer; l++)
      if (mc.moe_layer(l)) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    std::fprintf(stderr, "moe: %d experts, top-%d (%s), %s, layers %s, aux %.3g, z %.3g%s\n", mc.n_experts, mc.top_k,
                 mc.moe_renormalize ? "renormalised" : "raw gates", text.train_capacity.c_str(), layers.c_str(),
                 mc.aux_loss_coef, mc.z_loss_coef, text.train_moe_suffix.c_str());
  }
  // Shard tokens a row reads: --seq, or for span corruption the raw window its inputs come from.
  const double row_tokens = arch_of(mc).row_tokens(c.seq);
  if (const auto rows = arch_of(mc).describe_rows) {
    std::string line;
    rows(c.seq, line);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  const double steps_per_epoch = double(ds.train_tokens) / (double(c.batch) * row_tokens * c.accum);
  // Which precision and why: --compute auto's choice, or the run's own on resume.
  const std::string compute_why = o.resume ? " (the run's)" : o.compute_why.empty() ? "" : " (" + o.compute_why + ")";
  std::fprintf(stderr, "training: %d steps of %d x %d tokens x %d, lr %.2g (warmup %d, %s), %s%s; "
               "%.1f steps per epoch (%.2f epochs)\n", c.steps, c.batch, c.seq, c.accum, c.lr, c.warmup,
               schedule_describe(c).c_str(), compute_name(c.compute), compute_why.c_str(), steps_per_epoch,
               c.steps / steps_per_epoch);
  std::fprintf(stderr, "cpu: %s\n", cpu_compute_summary());
  if (run.comm && run.comm->size() > 1) {  // under mpirun: the layout (issue 21, item 13)
    const int P = run.comm->size(), EP = run.experts ? o.expert_parallel : 1;
    std::fprintf(stderr, "layout: %d ranks = data parallel %d%s, %d thread%s per rank%s\n", P, P,
                 EP > 1 ? (" (expert parallel " + std::to_string(EP) + ": each MoE layer's experts split over " +
                           std::to_string(EP) + " ranks)").c_str()
                        : "",
                 threads_get(), threads_get() == 1 ? "" : "s", run.zero ? ", optimizer sharded (ZeRO-1)" : "");
  }
}

void run_train(CLI::App* sub, TrainOpts& o) {
  if (o.plan) return run_plan(sub, o);
  if (sub->get_option("--ranks")->count() > 0)
    throw CLI::ValidationError("--ranks", "only with --plan (to train on P ranks, start moe with mpirun -np P)");
  if (o.cfg.out_dir.empty()) throw CLI::RequiredError("--out");
  const bool out_existed = path_exists(o.cfg.out_dir), log_existed = path_exists(o.cfg.out_dir + "/log.jsonl");
  // Under mpirun every rank runs an equal share of each batch: checked before anything
  // is made (an error on one rank ends the others before they could clean up).
  const int ranks = launched_by_mpi() ? comm_world().size() : 1;
  if (!o.resume && o.cfg.batch % ranks != 0)
    throw UsageError("--batch " + std::to_string(o.cfg.batch) + " must be a multiple of the " + std::to_string(ranks) +
                     " ranks (each runs an equal share of every batch)");
  // Expert parallelism: EP ranks split each MoE layer's experts (any EP on resume: the
  // checkpoint does not depend on the layout).
  TrainRun run;
  run.experts = expert_groups_for(o.expert_parallel);
  const ExpertSplit split = run.experts ? run.experts->split() : ExpertSplit{};
  if (!o.recipe.empty()) {
    if (o.resume) throw UsageError("--recipe starts a new run; --resume continues one with its own settings");
    recipe_apply(sub, o.recipe, {"out", "resume", "recipe", "stop-at"});
  }
  std::string note;
  if (o.resume) {
    for (const char* flag : kFixedOnResume)
      if (sub->get_option(flag)->count() > 0)
        throw UsageError(std::string(flag) + " cannot change when resuming (the run's settings are in "
                                    "its trainer_state.json); only --steps and the eval/save/log cadence can");
    if (is_dir(o.cfg.out_dir) && (!launched_by_mpi() || comm_world().rank() == 0)) lock_run(o.cfg.out_dir);
    const std::string dir = resume_run(flags(sub, o), split, run);
    std::fprintf(stderr, "resuming %s at step %d of %d\n", dir.c_str(), run.state.step,
                 run.state.config.steps);
  } else {
    if (o.cfg.data_dir.empty()) throw UsageError("--data is required (a dataset made by moe data)");
    if (path_exists(o.cfg.out_dir)) {
      try {
        resolve_model_dir(o.cfg.out_dir);
        throw UsageError("--out " + o.cfg.out_dir + " already holds a run: use --resume, or another --out");
      } catch (const std::runtime_error&) {  // no checkpoint inside: fine to use
      }
    }
    o.cfg.compute = compute_from_flag(o.compute, &o.compute_why);
    if (launched_by_mpi()) {  // one precision on every rank: rank 0's (auto measures in each process)
      int v = int(o.cfg.compute);
      comm_world().broadcast(&v, sizeof v, 0);
      o.cfg.compute = Compute(v);
    }
    RunFlags f = flags(sub, o);
    new_run(f, split, run, &note);
    o.cfg = f.cfg;
    run.state.config = o.cfg;
    if (!launched_by_mpi() || comm_world().rank() == 0) {
      make_dirs(o.cfg.out_dir);
      lock_run(o.cfg.out_dir);
      file_write_atomic(o.cfg.out_dir + "/recipe.json", make_recipe(o, o.cfg).dump(2) + "\n");
    }
  }
  run.stop_at = o.stop_at;
  // Under mpirun: the ranks share every global batch (data parallelism).
  if (launched_by_mpi()) run.comm = &comm_world();
  run.zero = o.zero == 1;
  if (run.zero && !(run.comm && run.comm->size() > 1))
    std::fprintf(stderr, "note: --zero 1 shards the optimizer over the ranks of mpirun; one process keeps it whole\n");
  const TrainConfig& c = run.state.config;
  const DatasetInfo ds = dataset_open(c.data_dir);
  run.tokenizer_path = ds.tokenizer_path;
  if (o.resume) check_val_size(ds, c);
  print_run(run, ds, o, note);
  Progress progress(c.steps, c.log_every);
  TrainSummary s;
  int sig = 0;
  {
    SignalsListen signals;  // a signal is recorded; the loop saves, then returns
    try {
      s = train(run, progress, [] { return signals_received() != 0; });
    } catch (...) {
      // A new run that failed before its first checkpoint leaves nothing behind: what
      // it made (the run directory, or its log in a directory that was there) goes.
      if (!o.resume && (!run.comm || run.comm->rank() == 0)) remove_failed_run(c.out_dir, out_existed, log_existed);
      throw;
    }
    sig = signals_received();
  }
  char val[64] = "not evaluated yet";
  if (std::isfinite(s.val_loss)) std::snprintf(val, sizeof val, "%.4f (at step %d)", s.val_loss, s.val_step);
  std::printf("step %d: train loss %.4f, val loss %s, epoch %.2f, %.0f tokens/s; checkpoint %s\n", s.step,
              s.train_loss, val, s.epochs, s.tokens_per_s, s.checkpoint.c_str());
  std::printf("peak memory: %s resident (VmHWM), recompute %s\n", bytes_human(s.peak_rss_bytes).c_str(),
              c.recompute ? "on" : "off");
  if (sig) {
    // The command that continues exactly: the same thread count (the sums' order, and so
    // the bits, depend on it), and under mpirun the same launcher.
    std::string cmd = "moe --threads " + std::to_string(threads_get()) + " train --out " + c.out_dir + " --resume";
    if (run.comm && run.comm->size() > 1) cmd = "mpirun -np " + std::to_string(run.comm->size()) + " " + cmd;
    std::fprintf(stderr, "stopped by %s at step %d, checkpoint saved: resume with  %s\n", stop_signal_name(sig),
                 s.step, cmd.c_str());
    set_exit_code(128 + sig);
  }
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<TrainOpts>();
  TrainConfig& c = o->cfg;
  CLI::App* sub = app.add_subcommand("train", "Train a dense or MoE model (from scratch, --init CKPT, or --resume)");
  sub->footer("Prints a progress line per step and a summary; log.jsonl fields: docs/logs.md in the moe sources.\n"
              "SIGINT, SIGTERM and SIGHUP save a checkpoint and exit 128+N; resume with --resume.");
  sub->add_option("--data", c.data_dir, "dataset directory made by `moe data`");
  sub->add_option("--out", c.out_dir, "run directory: checkpoint-N/ and log.jsonl (required, except for --plan)");
  sub->add_flag("--resume", o->resume, "continue the run in --out from its newest checkpoint, exactly");
  sub->add_option("--recipe", o->recipe,
                  "take every flag not on the command line from this JSON recipe (e.g. RUN/recipe.json, which "
                  "every new run writes)")
      ->default_str("none");
  sub->add_option("--preset", o->preset, "model size: tiny | small")->check(CLI::IsMember({"tiny", "small"}));
  sub->add_option("--family", o->family, "model family: " + family_train_help())
      ->check(CLI::IsMember(family_train_choices()));
  sub->add_option("--config", o->config_path, "a Hugging Face config.json instead of a preset")
      ->check(CLI::ExistingFile);
  sub->add_option("--init", o->init, "start from this checkpoint's weights (fresh optimizer)");
  sub->add_flag("--continue-data", o->continue_data,
                "with --init: continue the data order where that checkpoint's run stopped (same dataset)");
  sub->add_flag("--continue-schedule", o->continue_schedule,
                "with --init: continue that run's learning-rate schedule where it stood (no new warmup; its "
                "--schedule, --lr, --min-lr, --warmup unless given)");
  sub->add_flag("--init-optimizer", o->init_optimizer,
                "with --init: also its AdamW moments and step (e.g. from moe upcycle --carry-optimizer)");
  sub->add_option("--steps", c.steps, "total optimizer steps")->check(InRange(1, 100000000));
  sub->add_option("--batch", c.batch, "sequences per micro-batch")->check(InRange(1, 65536));
  sub->add_option("--seq", c.seq, "tokens per sequence")
      ->check(InRange(2, 1 << 20))
      ->default_str("min(256, the model's positions)");
  sub->add_option("--accum", c.accum, "micro-batches per step (gradient accumulation)")->check(InRange(1, 4096));
  sub->add_option("--lr", c.lr, "peak learning rate")->check(InRange(1e-9, 10.0));
  sub->add_option("--min-lr", c.min_lr, "learning rate at the end of the decay (cosine, wsd)")->check(InRange(0.0, 10.0));
  sub->add_option("--schedule", c.schedule,
                  "after the warmup: cosine (to --min-lr at the end) | wsd (constant, then linear to --min-lr over "
                  "the last --decay-steps) | rsqrt (lr sqrt(warmup / step), T5's)")
      ->check(CLI::IsMember({"cosine", "wsd", "rsqrt"}));
  sub->add_option("--decay-steps", c.decay_steps, "wsd: steps of the final decay (0: constant to the end)")
      ->check(InRange(0, 100000000));
  sub->add_option("--warmup", c.warmup, "linear warmup steps; must be shorter than --steps")
      ->check(InRange(0, 100000000))
      ->default_str("100, or steps/10 when the run is not longer than 100 steps");
  sub->add_option("--weight-decay", c.weight_decay, "AdamW weight decay (matrices only)")->check(InRange(0.0, 10.0));
  sub->add_option("--clip", c.clip, "global gradient-norm clip (0: off)")->check(InRange(0.0, 1e9));
  sub->add_option("--compute", o->compute,
                  "f32 | bf16 (bf16 GEMMs, fp32 master weights) | auto (bf16 where the CPU has a native bf16 GEMM, "
                  "f32 otherwise; the choice is printed and kept in the run)")
      ->check(CLI::IsMember({"f32", "bf16", "auto"}));
  sub->add_option("--dropout", c.dropout, "dropout on embeddings and residual branches")->check(InRange(0.0, 0.99));
  sub->add_option("--seed", c.seed, "seed of the weights and dropout masks");
  sub->add_flag("--allow-tokenizer-mismatch", o->allow_tokenizer_mismatch,
                "with --init: train even when the checkpoint's tokenizer.model is not the dataset's");
  sub->add_option("--eval-every", c.eval_every, "steps between validation runs (0: at the end)")
      ->check(InRange(0, 100000000));
  sub->add_option("--eval-batches", c.eval_batches, "validation batches per run")->check(InRange(1, 1000000));
  sub->add_option("--save-every", c.save_every, "steps between checkpoints (0: at the end)")
      ->check(InRange(0, 100000000));
  sub->add_option("--save-minutes", c.save_minutes,
                  "also save a checkpoint when this many minutes passed since the last one (0: off)")
      ->check(InRange(0.0, 1e9));
  sub->add_option("--keep", c.keep, "checkpoints to keep")->check(InRange(1, 100000));
  sub->add_option("--log-every", c.log_every, "steps between plain progress lines")->check(InRange(1, 100000000));
  MoeFlags& m = o->moe;
  sub->add_option("--experts", m.experts, "MoE: experts per MoE layer (0: dense)")->check(InRange(0, 4096));
  sub->add_option("--top-k", m.top_k, "MoE: experts per token (1: Switch)")->check(InRange(1, 4096));
  sub->add_option("--moe-layers", m.layers, "MoE: every-other (default) | all | a list like 1,3");
  sub->add_option("--capacity-factor", m.capacity, "MoE: training capacity factor (0: dropless)")
      ->check(InRange(0.0, 1000.0));
  sub->add_option("--eval-capacity-factor", m.eval_capacity, "MoE: evaluation capacity factor (0: dropless)")
      ->check(InRange(0.0, 1000.0));
  sub->add_option("--combine", m.combine, "MoE: renorm (Mixtral) | raw (Switch gates)")
      ->check(CLI::IsMember({"renorm", "raw"}));
  sub->add_option("--aux-coef", m.aux, "MoE: load-balancing loss coefficient")->check(InRange(0.0, 100.0));
  sub->add_option("--z-coef", m.z, "MoE: router z-loss coefficient")->check(InRange(0.0, 100.0));
  sub->add_option("--routing", m.routing,
                  "MoE: top-k (tokens choose) | expert-choice (t5: the encoder's; decoders refuse it: not causal)")
      ->check(CLI::IsMember({"top-k", "expert-choice"}));
  sub->add_option("--encoder-capacity-factor", m.encoder_capacity,
                  "t5 MoE with --routing expert-choice: each encoder expert takes cf x T / E tokens of a sequence")
      ->check(InRange(0.01, 1000.0));
  sub->add_option("--router-init-scale", m.router_init_scale,
                  "MoE: router init std sqrt(s / C); Switch's 0.1 by default, 1.0 the usual")
      ->check(InRange(1e-6, 100.0));
  sub->add_option("--router-jitter", m.jitter, "MoE: router input noise, x * U[1-j, 1+j] (training)")
      ->check(InRange(0.0, 0.99));
  sub->add_option("--expert-dropout", m.expert_dropout, "MoE: dropout inside the experts (training)")
      ->check(InRange(0.0, 0.99));
  sub->add_option("--zero", o->zero,
                  "ZeRO stage: 1 shards the AdamW moments over the ranks (same results, less memory), 0 keeps "
                  "them whole; under mpirun, and in --plan")
      ->check(InRange(0, 1));
  sub->add_option("--skip-nonfinite", c.skip_nonfinite,
                  "steps with a NaN/Inf loss or gradient to skip in a row (no update, logged) before stopping; "
                  "0: stop at the first (default)")
      ->check(InRange(0, 1000000));
  sub->add_flag("--recompute,!--no-recompute", c.recompute,
                "recompute each layer's activations in the backward (less memory, ~1 more forward of time; "
                "bit-identical results, so it may change on --resume)");
  sub->add_flag("--plan", o->plan, "print the memory estimate per rank for these flags and exit (no training)");
  sub->add_option("--ranks", o->ranks, "--plan: ranks P = data-parallel x expert-parallel (default 1)")
      ->check(InRange(1, 1 << 20));
  sub->add_option("--expert-parallel", o->expert_parallel,
                  "ranks EP that split each MoE layer's experts (under mpirun -np P, EP divides P; with --plan, of --ranks)")
      ->check(InRange(1, 4096));
  sub->add_option("--stop-at", o->stop_at, "save and stop at this step (resume later with --resume)")
      ->check(InRange(1, 100000000));
  sub->callback([sub, o] { run_train(sub, *o); });
}

}  // namespace moe::cli
