// moe upcycle for the t5 family (Arch::upcycle): the paper's routing by default
// (expert choice in the encoder, the decoder's top-k); the step-0 check on a
// span-corruption batch.
#include <cstdio>
#include <random>
#include <string>

#include "data/batches.h"
#include "data/dataset.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/flops.h"
#include "model/t5/t5.h"
#include "model/t5/t5_family.h"
#include "model/t5/t5_upcycle.h"

namespace moe {

namespace {

// Span corruption of the dataset's validation split (--check-data, or the dense run's),
// else random tokens.
std::string t5_check_batch(const UpcycleRequest& o, const ModelConfig& dc, TokenBatch& b) {
  const int seq = std::min(o.check_seq, dc.n_ctx);
  const std::string data = o.check_data ? o.check_data() : "";
  if (!data.empty()) {
    const DatasetInfo ds = dataset_open(data);
    arch_of(dc).batches(ds, dc, ds.val_path, o.check_batch, seq, 0)->batch_at(0, b);
    return "span corruption of the validation split of " + data;
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, dc.vocab_size - 1);
  const int Td = std::max(2, seq / 4);
  b.resize(o.check_batch, seq, Td);
  for (auto& v : b.inputs) v = tok(rng);
  for (auto& v : b.targets) v = tok(rng);
  for (int r = 0; r < b.B; r++)
    for (int i = 0; i < Td; i++) b.dec[size_t(r) * Td + i] = i ? b.targets[size_t(r) * Td + i - 1] : dc.bos_id;
  return "random tokens: no dataset known (give --check-data)";
}

}  // namespace

void t5_upcycle_run(const UpcycleRequest& o) {
  T5UpcycleOptions t;
  t.base = o.opt;
  t.encoder_expert_choice = o.encoder_routing == "expert-choice";
  t.encoder_capacity_factor = o.encoder_capacity;
  const std::string& dense_dir = o.dense_dir;
  if (!o.check_only) {
    const ModelConfig mc = [&] {
      try {
        return t5_upcycled_config(config_load(dense_dir + "/config.json"), t);
      } catch (const std::invalid_argument& e) {
        throw UpcyclePlanError(e.what());
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
    model_check_tokenizer(dense_dir, mc.vocab_size);
    t5_upcycle(dense_dir, o.out, t, o.force);
    if (!o.json) std::printf("wrote %s\n", o.out.c_str());
  }
  if (o.no_check) return;
  auto dense = t5_load(dense_dir);
  auto moe = t5_load(resolve_model_dir(o.out));
  TokenBatch b;
  const std::string src = t5_check_batch(o, dense->config(), b);
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

}  // namespace moe
