// moe upcycle: a dense checkpoint becomes an MoE checkpoint (its family's upcycler,
// model/arch.h), then the step-0 check compares the two on a held-out batch.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "io/files.h"
#include "model/arch.h"
#include "model/checkpoint.h"
#include "upcycle/options.h"
#include "train/state.h"

namespace moe::cli {

namespace {

struct UpcycleCli {
  std::string from, out, layers = "every-other", combine = "renorm", strategy = "copy", router_init = "random",
                         shard_size = "5GB", check_data;
  UpcycleOptions opt;
  bool dry_run = false, json = false, force = false, no_check = false, check_only = false;
  bool noise_given = false, drop_given = false, router_std_given = false;  // flags that need a matching choice
  int check_batch = 4, check_seq = 128;
  std::string encoder_routing = "expert-choice";  // t5
  float encoder_capacity = 2.0f;
};

uint64_t parse_size(const std::string& s) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = s.substr(used);
  double mult = unit.empty() || unit == "B" ? 1 : unit == "KB" ? 1e3 : unit == "MB" ? 1e6 : unit == "GB" ? 1e9 : -1;
  if (used == 0 || mult < 0 || !(v > 0))
    throw std::invalid_argument("--shard-size \"" + s + "\": expected a size like 5GB, 500MB or 1000000");
  return uint64_t(v * mult);
}

// The dataset of the step-0 batch: --check-data, or the one the dense run trained on
// (when it is still there); "" for none.
std::string check_dataset(const UpcycleCli& o, const std::string& dense_dir) {
  if (!o.check_data.empty() || !path_exists(dense_dir + "/trainer_state.json")) return o.check_data;
  const std::string d = trainer_state_load(dense_dir).config.data_dir;
  return path_exists(d + "/meta.json") ? d : "";
}

// The options from the flags, checked against each other (both families).
void prepare(UpcycleCli& o) {
  o.opt.renormalize = o.combine == "renorm";
  o.opt.strategy = upcycle_strategy_parse(o.strategy);
  if (o.noise_given && o.opt.strategy != UpcycleStrategy::Noise)
    throw std::invalid_argument("--noise applies to --strategy noise only");
  if (o.drop_given && o.opt.strategy != UpcycleStrategy::Drop)
    throw std::invalid_argument("--drop-rate applies to --strategy drop only");
  if (o.router_std_given && o.router_init == "zeros")
    throw std::invalid_argument("--router-std applies to --router-init random only");
  parse_moe_layers(o.layers, &o.opt.layers, &o.opt.all_layers);
  if (o.router_init == "zeros") o.opt.router_std = 0.0f;
  else if (o.opt.router_std == 0.0f) throw std::invalid_argument("--router-std must be positive (or --router-init zeros)");
  o.opt.max_shard_bytes = parse_size(o.shard_size);
  if (!o.dry_run && o.out.empty()) throw std::invalid_argument("--out is required (or --dry-run)");
  if (!o.dry_run && path_exists(o.out) && !o.force)
    throw std::invalid_argument(o.out + ": already exists (give --force to replace it)");
}

// The dense checkpoint's family upcycles it (Arch::upcycle: the decoder families'
// streamed upcycler, or T5's), after the options are checked against each other.
void run_upcycle(UpcycleCli& o) {
  const std::string dense_dir = resolve_model_dir(o.from);
  const ModelConfig dc = config_load(dense_dir + "/config.json");
  if (o.check_only && o.out.empty()) throw std::invalid_argument("--check-only needs --out (the upcycled checkpoint)");
  if (!o.check_only) {
    if (o.opt.experts == 0) throw CLI::RequiredError("--experts");
    prepare(o);
  }
  UpcycleRequest r;
  r.from = o.from, r.dense_dir = dense_dir, r.out = o.out, r.opt = o.opt;
  r.dry_run = o.dry_run, r.json = o.json, r.force = o.force, r.no_check = o.no_check, r.check_only = o.check_only;
  r.check_batch = o.check_batch, r.check_seq = o.check_seq;
  r.encoder_routing = o.encoder_routing, r.encoder_capacity = o.encoder_capacity;
  r.check_data = [&o, dense_dir] { return check_dataset(o, dense_dir); };
  family_require(dc, Capability::Upcycle, r.dense_dir + ": moe upcycle");
  try {
    arch_of(dc).upcycle(r);
  } catch (const UpcyclePlanError& e) {  // what the options ask that the dense model does not allow
    throw UsageError(e.what());
  }
}

}  // namespace

void register_upcycle(CLI::App& app) {
  auto o = std::make_shared<UpcycleCli>();
  UpcycleOptions& u = o->opt;
  CLI::App* sub = app.add_subcommand(
      "upcycle", "Turn a dense checkpoint into an MoE checkpoint (sparse upcycling), then check step 0");
  sub->footer("The step-0 report's columns: docs/logs.md in the moe sources.");
  sub->add_option("--from", o->from, "dense checkpoint directory (or a run directory: its newest checkpoint)")
      ->required();
  sub->add_option("--out", o->out, "MoE checkpoint directory to write (atomically)");
  u.experts = 0;  // required, except with --check-only
  sub->add_option("--experts", u.experts, "experts per MoE layer (required)")
      ->check(InRange(1, 4096))
      ->default_str("");  // required: no default to show
  sub->add_option("--top-k", u.top_k, "experts per token, stored in config.json (default 2)")->check(InRange(1, 4096));
  sub->add_option("--combine", o->combine, "renorm (gates renormalised over the top-k; step 0 exact) | raw (Switch)")
      ->check(CLI::IsMember({"renorm", "raw"}));
  sub->add_option("--moe-layers", o->layers, "every-other (default) | all | a list like 1,3");
  sub->add_option("--strategy", o->strategy, "copy (default) | noise | drop (Drop-Upcycling) | granular (virtual groups)")
      ->check(CLI::IsMember({"copy", "noise", "drop", "granular"}));
  sub->add_option("--noise", u.noise, "noise: std relative to each weight's std (default 0.01)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--drop-rate", u.drop_rate, "drop: fraction of each expert's units re-initialised (default 0.5)")
      ->check(InRange(0.0, 1.0));
  sub->add_option("--granularity", u.granularity, "G: experts are 1/G shards of the MLP (granular; default 1)")
      ->check(InRange(1, 4096));
  sub->add_option("--weight-scale", u.weight_scale,
                  "down-projection multiplier (default: G / combine mass when G > 1, else 1)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--scale-to-dense", u.scale_to_dense,
                "with --combine raw: scale each expert's down projection by G / (K/E), so a uniform router gives the "
                "dense output at step 0 (NVIDIA's weight scaling; top-1 of E experts: x E)");
  sub->add_option("--router-init", o->router_init, "random (default) | zeros")->check(CLI::IsMember({"random", "zeros"}));
  sub->add_option("--router-std", u.router_std, "random router init std (default Switch's sqrt(0.1 / C))")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--encoder-routing", o->encoder_routing,
                  "t5: expert-choice (default: the paper's; each expert takes cf x T / E tokens of a sequence) | top-k")
      ->check(CLI::IsMember({"expert-choice", "top-k"}));
  sub->add_option("--encoder-capacity-factor", o->encoder_capacity, "t5 with expert choice: cf (default 2, the paper's)")
      ->check(InRange(0.01, 1000.0));
  sub->add_option("--capacity-factor", u.capacity_factor, "training capacity factor stored in config.json (default 2; <= 0: dropless)");
  sub->add_option("--eval-capacity-factor", u.eval_capacity_factor, "evaluation capacity factor (default 0: dropless)");
  sub->add_option("--aux-coef", u.aux_coef, "load-balancing loss coefficient (default 0.01)")->check(CLI::NonNegativeNumber);
  sub->add_option("--z-coef", u.z_coef, "router z-loss coefficient (default 1e-3)")->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", u.seed, "seed of every random draw (router, noise, drop)");
  sub->add_option("--dtype", u.dtype, "keep (default: the input's) | f32 | bf16 | f16")
      ->check(CLI::IsMember({"keep", "f32", "bf16", "f16"}));
  sub->add_flag("--carry-optimizer", u.carry_optimizer,
                "copy the dense Adam moments into every expert (writes optimizer.safetensors; train with --init-optimizer)");
  sub->add_option("--shard-size", o->shard_size, "split the output past this size, HF-style (default 5GB)");
  sub->add_flag("--dry-run", o->dry_run, "print the plan (tensors, shapes, parameters) and write nothing");
  sub->add_flag("--force", o->force, "replace --out if it exists");
  sub->add_flag("--no-check", o->no_check, "skip the step-0 check");
  sub->add_flag("--check-only", o->check_only, "only the step-0 check of an existing --out against --from");
  sub->add_option("--check-data", o->check_data, "dataset for the step-0 batch (default: the dense run's, else random)");
  sub->add_option("--check-batch", o->check_batch, "step-0 batch: sequences (default 4)")->check(InRange(1, 1024));
  sub->add_option("--check-seq", o->check_seq, "step-0 batch: tokens per sequence (default 128)")->check(InRange(2, 65536));
  sub->add_flag("--json", o->json, "one JSON object (plan and step-0 report) instead of text");
  sub->callback([o, sub] {
    o->noise_given = sub->get_option("--noise")->count() > 0;
    o->drop_given = sub->get_option("--drop-rate")->count() > 0;
    o->router_std_given = sub->get_option("--router-std")->count() > 0;
    run_upcycle(*o);
  });
}

}  // namespace moe::cli
