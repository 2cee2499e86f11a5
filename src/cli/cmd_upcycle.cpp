// moe upcycle: a dense checkpoint becomes an MoE checkpoint (src/upcycle), then the
// step-0 check compares the two on a held-out batch.
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "train/eval.h"
#include "model/flops.h"
#include "model/t5.h"
#include "upcycle/t5_upcycle.h"
#include "cli/model_open.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "train/state.h"
#include "upcycle/step0.h"
#include "upcycle/upcycle.h"

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

// The held-out batch: the start of the validation split of that dataset, else seeded
// random tokens.
std::string check_batch(const UpcycleCli& o, const std::string& dense_dir, int V, std::vector<int32_t>& in,
                        std::vector<int32_t>& tgt) {
  const size_t N = size_t(o.check_batch) * o.check_seq;
  in.resize(N), tgt.resize(N);
  const std::string data = check_dataset(o, dense_dir);
  if (!data.empty()) {
    DatasetInfo ds = dataset_open(data);
    DataLoader val = DataLoader::open(ds.val_path, o.check_batch, o.check_seq, uint64_t(V));
    val.next(in.data(), tgt.data());
    return "validation split of " + data;
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, V - 1);
  for (auto& t : in) t = tok(rng);
  for (auto& t : tgt) t = tok(rng);
  return "random tokens: no dataset known (give --check-data)";
}

// The step-0 check of --out against --from; the report as text or JSON, and kept
// beside the checkpoint as step0.json (atomically) for `moe report`.
nlohmann::ordered_json run_check(UpcycleCli& o, const std::string& dense_dir, const ModelConfig& dc) {
  std::vector<int32_t> in, tgt;
  o.check_seq = std::min(o.check_seq, dc.n_ctx);
  const std::string src = check_batch(o, dense_dir, dc.vocab_size, in, tgt);
  Step0Report rep = step0_check(dense_dir, o.out, in, tgt, o.check_batch, o.check_seq);
  rep.batch = src;
  if (!o.json) std::printf("%s", rep.text().c_str());
  nlohmann::ordered_json j = rep.to_json();
  nlohmann::ordered_json kept{{"from", dense_dir}};
  kept.update(j);
  try {  // a side file: a read-only checkpoint still gets its check printed
    file_write_atomic(o.out + "/step0.json", kept.dump(2) + "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe upcycle: warning: step0.json not kept (%s); moe report will not show this step 0\n",
                 e.what());
  }
  return j;
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

// T5 (upcycle/t5_upcycle.h): the paper's routing by default (expert choice in the
// encoder, the decoder's top-k); the step-0 check on a span-corruption batch.
void run_t5_upcycle(UpcycleCli& o) {
  T5UpcycleOptions t;
  t.base = o.opt;
  t.encoder_expert_choice = o.encoder_routing == "expert-choice";
  t.encoder_capacity_factor = o.encoder_capacity;
  const std::string dense_dir = resolve_model_dir(o.from);
  if (!o.check_only) {
    const ModelConfig mc = [&] {
      try {
        return t5_upcycled_config(config_load(dense_dir + "/config.json"), t);
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
    }();
    std::string layers;
    for (int l = 0; l < std::max(mc.n_layer, mc.n_dec_layer); l++)
      if (mc.moe_layer(l)) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    const ParamCounts pc = model_param_counts(mc);
    if (!o.json)
      std::printf("upcycle %s (t5) -> %d experts in layers %s of both stacks: encoder %s, decoder top-%d %s; "
                  "%.2fM parameters, %.2fM active per token\n", dense_dir.c_str(), mc.n_experts, layers.c_str(),
                  mc.expert_choice ? ("expert choice (cf " + std::to_string(mc.enc_capacity_factor).substr(0, 4) + ")").c_str()
                                   : "tokens choose",
                  mc.top_k, mc.moe_renormalize ? "renormalised" : "raw gates", pc.total / 1e6, pc.active / 1e6);
    if (o.dry_run) {
      if (!o.json) std::printf("(dry run: nothing written)\n");
      else std::printf("%s\n", config_to_hf(mc).dump().c_str());
      return;
    }
    check_model_tokenizer(dense_dir, mc.vocab_size);
    t5_upcycle(dense_dir, o.out, t, o.force);
    if (!o.json) std::printf("wrote %s\n", o.out.c_str());
  }
  if (o.no_check) return;
  auto dense = t5_load(dense_dir);
  auto moe = t5_load(resolve_model_dir(o.out));
  // The batch: span corruption of the dataset's validation split (--check-data, or the
  // dense run's), else random tokens.
  const std::string data = check_dataset(o, dense_dir);
  std::string src;
  TokenBatch b;
  const int seq = std::min(o.check_seq, dense->config().n_ctx);
  if (!data.empty()) {
    const DatasetInfo ds = dataset_open(data);
    model_batches(ds, dense->config(), ds.val_path, o.check_batch, seq, 0)->batch_at(0, b);
    src = "span corruption of the validation split of " + data;
  } else {
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> tok(0, dense->config().vocab_size - 1);
    const int Td = std::max(2, seq / 4);
    b.resize(o.check_batch, seq, Td);
    for (auto& v : b.inputs) v = tok(rng);
    for (auto& v : b.targets) v = tok(rng);
    for (int r = 0; r < b.B; r++)
      for (int i = 0; i < Td; i++) b.dec[size_t(r) * Td + i] = i ? b.targets[size_t(r) * Td + i - 1] : dense->config().bos_id;
    src = "random tokens: no dataset known (give --check-data)";
  }
  Step0Report rep = t5_step0_check(*dense, *moe, b);
  rep.batch = src;
  if (!o.json) std::printf("%s", rep.text().c_str());
  nlohmann::ordered_json kept{{"from", dense_dir}};
  kept.update(rep.to_json());
  try {
    file_write_atomic(o.out + "/step0.json", kept.dump(2) + "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe upcycle: warning: step0.json not kept (%s)\n", e.what());
  }
  if (o.json) std::printf("%s\n", kept.dump().c_str());
}

void run_upcycle(UpcycleCli& o) {
  if (config_load(resolve_model_dir(o.from) + "/config.json").encoder_decoder()) {
    if (o.check_only && o.out.empty()) throw std::invalid_argument("--check-only needs --out (the upcycled checkpoint)");
    if (!o.check_only && o.opt.experts == 0) throw CLI::RequiredError("--experts");
    if (!o.check_only) prepare(o);
    return run_t5_upcycle(o);
  }
  if (o.check_only) {  // an existing upcycled checkpoint against its dense one
    if (o.out.empty()) throw std::invalid_argument("--check-only needs --out (the upcycled checkpoint)");
    const std::string dense = resolve_model_dir(o.from);
    auto j = run_check(o, dense, config_load(dense + "/config.json"));
    if (o.json) std::printf("%s\n", j.dump().c_str());
    return;
  }
  if (o.opt.experts == 0) throw CLI::RequiredError("--experts");
  prepare(o);

  // The plan checks the options against the dense model (k <= E, granularity divides
  // the MLP, ...): its std::invalid_argument is a usage error; a broken checkpoint
  // throws std::runtime_error (exit 1).
  std::unique_ptr<Upcycler> plan;
  try {
    plan = std::make_unique<Upcycler>(o.from, o.opt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  Upcycler& up = *plan;
  check_model_tokenizer(up.dense_dir(), up.dense_config().vocab_size);  // copied into the output: check it first
  if (o.dry_run) {
    if (o.json) std::printf("%s\n", up.plan_json().dump().c_str());
    else std::printf("%s(dry run: nothing written)\n", up.plan_text().c_str());
    return;
  }
  if (!o.json) std::printf("%s", up.plan_text(false).c_str());
  std::fflush(stdout);
  up.write(o.out, o.force);
  if (!o.json) std::printf("wrote %s\n", o.out.c_str());
  nlohmann::ordered_json result{{"out", o.out}, {"plan", up.plan_json()}};
  result["plan"].erase("tensors");
  if (!o.no_check) {
    try {
      result["step0"] = run_check(o, up.dense_dir(), up.dense_config());
    } catch (const std::exception& e) {  // the checkpoint is written and valid: say so
      throw std::runtime_error("wrote " + o.out + ", but the step-0 check failed: " + e.what() +
                               " (rerun it with --check-only)");
    }
  }
  if (o.json) std::printf("%s\n", result.dump().c_str());
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
