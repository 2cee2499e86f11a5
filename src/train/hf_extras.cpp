#include "train/hf_extras.h"

#include "model/family.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/tokenizer.h"
#include "io/files.h"
#include "model/arch.h"
#include "model/flops.h"

namespace moe {

namespace {

using ojson = nlohmann::ordered_json;

// The last training line (with "loss") of log.jsonl, read from its tail: {} when none.
nlohmann::json last_step_line(const std::string& log_path) {
  std::ifstream f(log_path, std::ios::binary);
  if (!f) return {};
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - (1 << 20));
  f.seekg(from);
  std::string tail((std::istreambuf_iterator<char>(f)), {});
  std::istringstream in(tail);
  std::string line;
  nlohmann::json last;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("loss")) last = j;
  }
  return last;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// Appends every piece (strings or literals): `s += "a" + b + ...` trips a false
// -Wrestrict of GCC 12 on literal + std::string.
template <class... P>
void add(std::string& s, const P&... pieces) {
  (s.append(pieces), ...);
}

std::string num(long long v) { return std::to_string(v); }

std::string model_card(const LanguageModel& m, const TrainerState& st, const nlohmann::json& last) {
  const ModelConfig& c = m.config();
  const ParamCounts pc = model_param_counts(c);
  const TrainConfig& t = st.config;
  std::string layers;
  for (int l = 0; l < c.n_layer; l++)
    if (c.moe_layer(l)) add(layers, layers.empty() ? "" : ",", num(l));
  std::string s;
  const Arch& arch = arch_of(c);
  add(s, "---\nlibrary_name: moe\ntags:\n- ", arch.card_tag, "\n- ", c.family, "\n");
  if (c.is_moe()) add(s, "- mixture-of-experts\n");
  add(s, "---\n\n# checkpoint-", num(st.step), "\n\nA ", c.family, "-family ", c.is_moe() ? "Mixture-of-Experts " : "",
      "language model trained with moe ", MOE_VERSION, ".\n\n");
  add(s, "## Architecture\n\n| layers | hidden | heads (kv) | MLP | vocabulary | positions | parameters | active per token |\n"
         "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  add(s, "| ", c.n_dec_layer > 0 ? num(c.n_layer) + " + " + num(c.n_dec_layer) : num(c.n_layer), " | ", num(c.n_embd), " | ", num(c.n_head), " (", num(c.n_kv_head), ") | ", num(c.n_inner),
      " | ", num(c.vocab_size), " | ", num(c.n_ctx), " | ", fmt("%.2fM", pc.total / 1e6), " | ",
      fmt("%.2fM", pc.active / 1e6), " |\n\n");
  if (c.is_moe())
    add(s, "MoE: ", num(c.n_experts), " experts in layers ", layers, ", top-", num(c.top_k),
        c.moe_renormalize ? " renormalised" : " raw gates", ", capacity factor ", fmt("%.2f", c.capacity_factor),
        " (training) / ", fmt("%.2f", c.eval_capacity_factor), " (evaluation; <= 0: dropless).\n\n");
  add(s, "## Training\n\n- data: `", t.data_dir, "` (tokenizer.model beside this file)\n");
  if (!st.init_from.empty()) add(s, "- initialised from: `", st.init_from, "`\n");
  add(s, "- steps: ", num(st.step), " of ", num(t.steps), " (", num((long long)st.tokens), " tokens; ", num(t.batch), " x ",
      num(t.seq), " tokens x ", num(t.accum), " per step), AdamW lr ", fmt("%.3g", t.lr), " (warmup ", num(t.warmup),
      ", ", schedule_describe(t), "), ", t.compute == Compute::BF16 ? "bf16" : "f32", " compute, seed ",
      num((long long)t.seed), "\n");
  if (last.contains("loss"))
    add(s, "- final training loss: ", fmt("%.4f", last["loss"].get<double>()), " (step ", num(last.value("step", 0)), ")\n");
  if (st.val_step >= 0 && std::isfinite(st.val_loss))
    add(s, "- validation loss: ", fmt("%.4f", st.val_loss), " (step ", num(st.val_step), ")\n");
  add(s, "\nLosses in nats per token; a uniform guess is ln ", num(c.vocab_size), " = ",
      fmt("%.2f", std::log(double(c.vocab_size))), ".\n");
  if (c.is_moe() && last.contains("moe")) {
    add(s, "\n## Routing (the last training step)\n\n| layer | max load (x fair share) | dropped | router entropy (nats) |\n"
           "|---:|---:|---:|---:|\n");
    for (const auto& l : last["moe"]) {
      double mx = 0;
      const auto& ch = l["chosen"];
      for (const auto& v : ch) mx = std::max(mx, v.get<double>() * double(ch.size()));
      add(s, "| ", num(l.value("layer", 0)), " | ", fmt("%.2f", mx), " | ", fmt("%.1f%%", 100 * l.value("drop", 0.0)),
          " | ", fmt("%.3f", l.value("entropy", 0.0)), " |\n");
    }
    add(s, "\nFields: docs/logs.md in the moe sources.\n");
  }
  add(s, arch.card_use(c));
  return s;
}

}  // namespace

void hf_extras_write(const std::string& dir, const LanguageModel& m, const TrainerState& st, const std::string& run_dir) {
  const ModelConfig& c = m.config();
  ojson gen{{"_from_model_config", false}, {"bos_token_id", c.bos_id}, {"eos_token_id", c.eos_id},
            {"do_sample", true}, {"temperature", 0.8}, {"top_k", 0}, {"top_p", 1.0}, {"max_new_tokens", 200}};
  if (const auto hook = arch_of(c).hf_generation) hook(c, gen);
  if (family_can(c, Capability::Generate)) file_write_atomic(dir + "/generation_config.json", gen.dump(2) + "\n");
  const std::string tok_path = dir + "/tokenizer.model";
  if (path_exists(tok_path)) {
    Tokenizer tok = Tokenizer::load(tok_path);
    auto piece = [&](int32_t id) { return id >= 0 ? ojson(tok.piece(id)) : ojson(nullptr); };
    ojson special{{"bos_token", piece(tok.bos_id())}, {"eos_token", piece(tok.eos_id())},
                  {"unk_token", piece(tok.unk_id())}};
    if (tok.pad_id() >= 0) special["pad_token"] = piece(tok.pad_id());
    ojson cfg{{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", false},
              {"add_prefix_space", false}, {"legacy", false}, {"clean_up_tokenization_spaces", false},
              {"model_max_length", c.n_ctx}, {"sp_model_kwargs", ojson::object()}};
    for (const auto& [k, v] : special.items()) cfg[k] = v;
    cfg["pad_token"] = tok.pad_id() >= 0 ? piece(tok.pad_id()) : ojson(nullptr);
    if (const auto hook = arch_of(c).hf_tokenizer) hook(c, tok.vocab_size(), cfg, special);
    file_write_atomic(dir + "/special_tokens_map.json", special.dump(2) + "\n");
    file_write_atomic(dir + "/tokenizer_config.json", cfg.dump(2) + "\n");
  }
  file_write_atomic(dir + "/README.md", model_card(m, st, last_step_line(run_dir + "/log.jsonl")));
}

}  // namespace moe
