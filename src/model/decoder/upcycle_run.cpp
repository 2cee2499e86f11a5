// moe upcycle for the decoder families (Arch::upcycle): the streamed plan and write
// (upcycle.h), then the layer-by-layer step-0 check (step0.h) on a held-out batch.
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "data/dataset.h"
#include "data/loader.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/decoder/decoder.h"
#include "model/decoder/step0.h"
#include "model/decoder/upcycle.h"

namespace moe {

namespace {

// The held-out batch: the start of the validation split of the request's dataset, else
// seeded random tokens.
std::string check_batch(const UpcycleRequest& o, int seq, int V, std::vector<int32_t>& in, std::vector<int32_t>& tgt) {
  const size_t N = size_t(o.check_batch) * seq;
  in.resize(N), tgt.resize(N);
  const std::string data = o.check_data ? o.check_data() : "";
  if (!data.empty()) {
    DatasetInfo ds = dataset_open(data);
    DataLoader val = DataLoader::open(ds.val_path, o.check_batch, seq, uint64_t(V));
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
nlohmann::ordered_json run_check(const UpcycleRequest& o, const ModelConfig& dc) {
  std::vector<int32_t> in, tgt;
  const int seq = std::min(o.check_seq, dc.n_ctx);
  const std::string src = check_batch(o, seq, dc.vocab_size, in, tgt);
  Step0Report rep = step0_check(o.dense_dir, o.out, in, tgt, o.check_batch, seq);
  rep.batch = src;
  if (!o.json) std::printf("%s", rep.text().c_str());
  nlohmann::ordered_json j = rep.to_json();
  nlohmann::ordered_json kept{{"from", o.dense_dir}};
  kept.update(j);
  try {  // a side file: a read-only checkpoint still gets its check printed
    file_write_atomic(o.out + "/step0.json", kept.dump(2) + "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe upcycle: warning: step0.json not kept (%s); moe report will not show this step 0\n",
                 e.what());
  }
  return j;
}

}  // namespace

void decoder_upcycle(const UpcycleRequest& o) {
  if (o.check_only) {  // an existing upcycled checkpoint against its dense one
    auto j = run_check(o, config_load(o.dense_dir + "/config.json"));
    if (o.json) std::printf("%s\n", j.dump().c_str());
    return;
  }
  // The plan checks the options against the dense model (k <= E, granularity divides
  // the MLP, ...): its std::invalid_argument is a usage error; a broken checkpoint
  // throws std::runtime_error (exit 1).
  std::unique_ptr<Upcycler> plan;
  try {
    plan = std::make_unique<Upcycler>(o.from, o.opt);
  } catch (const std::invalid_argument& e) {
    throw UpcyclePlanError(e.what());
  }
  Upcycler& up = *plan;
  model_check_tokenizer(up.dense_dir(), up.dense_config().vocab_size);  // copied into the output: check it first
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
      result["step0"] = run_check(o, up.dense_config());
    } catch (const std::exception& e) {  // the checkpoint is written and valid: say so
      throw std::runtime_error("wrote " + o.out + ", but the step-0 check failed: " + e.what() +
                               " (rerun it with --check-only)");
    }
  }
  if (o.json) std::printf("%s\n", result.dump().c_str());
}

}  // namespace moe
