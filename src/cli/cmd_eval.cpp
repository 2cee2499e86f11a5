// moe eval: loss and perplexity of a checkpoint on a dataset's validation tokens.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "dist/comm.h"
#include "cli/model_open.h"
#include "cli/cli_util.h"
#include "data/dataset.h"
#include "data/tokenizer_id.h"
#include "model/checkpoint.h"
#include "train/config.h"
#include "train/eval.h"
#include "train/expert_parallel.h"

namespace moe::cli {

namespace {

struct EvalOpts {
  std::string model, data, split = "val", compute = "f32";
  int batches = 0, batch = 8, seq = 0, expert_parallel = 1;
  bool json = false, allow_tokenizer_mismatch = false;
};

void run_eval(const EvalOpts& o) {
  // Under mpirun the ranks split the batches; with --expert-parallel EP the EP ranks of a
  // group each hold E/EP of every MoE layer's experts and run the group's batches
  // together (a model larger than one rank's memory).
  Comm* comm = launched_by_mpi() ? &comm_world() : nullptr;
  std::unique_ptr<ExpertGroups> eg = expert_groups_for(o.expert_parallel);
  OpenedModel opened = open_model(o.model, eg ? eg->split() : ExpertSplit{});
  if (eg) opened.model->set_moe_group(eg->ep.get());  // a batch's rows are split over the group: route it whole
  const std::string& dir = opened.dir;
  auto& m = opened.model;
  DatasetInfo ds = dataset_open(o.data);
  if (!o.allow_tokenizer_mismatch &&
      !tokenizer_check(dir, ds.tokenizer_sha256, "dataset " + o.data,
                       "evaluate on a dataset built with moe data --tokenizer " + dir + "/tokenizer.model",
                       "--allow-tokenizer-mismatch"))
    std::fprintf(stderr, "note: %s has no tokenizer.model: cannot check that it matches %s's tokenizer\n", dir.c_str(),
                 o.data.c_str());
  if (ds.vocab_size > m->config().vocab_size)
    throw std::invalid_argument(o.data + ": tokenizer has " + std::to_string(ds.vocab_size) +
                                " tokens but the model's vocabulary is " + std::to_string(m->config().vocab_size));
  const int seq = o.seq > 0 ? o.seq : std::min(256, m->config().n_ctx);
  if (seq > m->config().n_ctx)
    throw UsageError("--seq " + std::to_string(seq) + " exceeds the model's " +
                                std::to_string(m->config().n_ctx) + " positions");
  const std::string shard = o.split == "val" ? ds.val_path : ds.train_path;
  // T5: the span-corruption loss (--seq encoder tokens per row, the masks of seed 0).
  std::unique_ptr<BatchSource> data = model_batches(ds, m->config(), shard, o.batch, seq, 0);
  int compute = int(compute_from_flag(o.compute));
  if (comm) comm->broadcast(&compute, sizeof compute, 0);  // one precision on every rank: rank 0's
  EvalResult r = evaluate(*m, *data, o.batches, Compute(compute), comm, o.expert_parallel);  // one process's result
  const double uniform = std::log(double(m->config().vocab_size));
  if (r.loss > uniform)
    std::fprintf(stderr, "note: loss %.4f is above a uniform guess (ln %d = %.4f): an untrained model, or data it "
                 "was not made for\n", r.loss, m->config().vocab_size, uniform);
  if (o.json) {
    nlohmann::ordered_json j{{"model", dir}, {"data", o.data}, {"split", o.split}, {"loss", r.loss},
                             {"perplexity", r.perplexity}, {"tokens", r.tokens}, {"batches", r.batches}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s (%s): loss %.4f  perplexity %.2f  (%llu tokens)\n", dir.c_str(), o.data.c_str(),
                o.split.c_str(), r.loss, r.perplexity, (unsigned long long)r.tokens);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOpts>();
  CLI::App* sub = app.add_subcommand("eval", "Loss and perplexity of a checkpoint on a dataset");
  sub->add_option("--model", o->model, "checkpoint directory (or a run directory: its newest checkpoint)")
      ->required();
  sub->add_option("--data", o->data, "dataset directory made by `moe data`")->required();
  sub->add_option("--split", o->split, "val | train")->check(CLI::IsMember({"val", "train"}));
  sub->add_option("--batches", o->batches, "batches to evaluate (0: the whole split)")
      ->check(InRange(0, 100000000));
  sub->add_option("--batch", o->batch, "sequences per batch")->check(InRange(1, 65536));
  sub->add_option("--seq", o->seq, "tokens per sequence")
      ->check(InRange(2, 1 << 20))
      ->default_str("min(256, the model's positions)");
  sub->add_option("--compute", o->compute, "f32 | bf16 | auto")->check(CLI::IsMember({"f32", "bf16", "auto"}));
  sub->add_option("--expert-parallel", o->expert_parallel,
                  "under mpirun: ranks that split each MoE layer's experts (each loads only its experts)")
      ->check(InRange(1, 4096));
  sub->add_flag("--json", o->json, "one JSON object");
  sub->add_flag("--allow-tokenizer-mismatch", o->allow_tokenizer_mismatch,
                "evaluate even when the checkpoint's tokenizer.model is not the dataset's");
  sub->callback([o] { run_eval(*o); });
}

}  // namespace moe::cli
