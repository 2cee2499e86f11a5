// libFuzzer: config_load (JSON, then config_from_hf and the family readers, then
// validate) on arbitrary bytes as config.json. A config it accepts must survive the
// round trip config_to_hf -> config_from_hf unchanged in its sizes.
#include <cstdio>
#include <stdexcept>

#include "fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = moe::fuzz::temp_path("config.json");
  moe::fuzz::write_file(path, data, size);
  moe::ModelConfig c;
  try {
    c = moe::config_load(path);
  } catch (const std::runtime_error&) {
    return 0;
  } catch (const std::invalid_argument&) {
    return 0;
  }
  // Accepted: writing it back out and reading that must give the same model. Only up
  // to 4096 layers: config_to_hf lists the MoE layers, linear in n_layer (which the
  // reader bounds only by 2^30, like every size).
  if (c.n_layer > 4096) return 0;
  moe::ModelConfig r;
  try {
    r = moe::config_from_hf(moe::config_to_hf(c), path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "accepted config does not round-trip: %s\n", e.what());
    __builtin_trap();
  }
  if (r.family != c.family || r.vocab_size != c.vocab_size || r.n_ctx != c.n_ctx || r.n_embd != c.n_embd ||
      r.n_layer != c.n_layer || r.n_head != c.n_head || r.n_kv_head != c.n_kv_head || r.n_inner != c.n_inner ||
      r.n_experts != c.n_experts || r.top_k != c.top_k || r.expert_inner() != c.expert_inner() ||
      r.tied != c.tied || r.n_dec_layer != c.n_dec_layer || r.head_dim() != c.head_dim() || r.mlp != c.mlp ||
      r.rel_buckets != c.rel_buckets || r.rel_max_distance != c.rel_max_distance || r.pad_id != c.pad_id ||
      r.expert_choice != c.expert_choice || r.switch_capacity != c.switch_capacity ||
      r.moe_renormalize != c.moe_renormalize) {
    std::fprintf(stderr, "accepted config changes in the round trip\n");
    __builtin_trap();
  }
  for (int l = 0; l < c.n_layer; l++)
    if (r.moe_layer(l) != c.moe_layer(l)) {
      std::fprintf(stderr, "accepted config: MoE layer %d changes in the round trip\n", l);
      __builtin_trap();
    }
  return 0;
}
