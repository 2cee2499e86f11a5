// The decoder family folder's hooks (gpt2, llama, mixtral share them): what
// decoder_arch() gathers into its Arch table (model/arch.h).
#pragma once
#include <memory>
#include <string>

#include "model/arch.h"
#include "model/family.h"
#include "upcycle/options.h"

namespace moe {

class Model;

const Arch& decoder_arch();
const ConfigRules& decoder_rules();

// The folder's families (registered in model/families.cpp).
const Family& family_gpt2();
const Family& family_llama();
const Family& family_mixtral();  // Llama with MoE layers: Mixtral's names and config fields
// The same with raw top-k gates (moe_renormalize false), which HF's Mixtral does not
// compute: our own model_type, read back as family "mixtral".
inline constexpr const char* kMixtralRawGates = "mixtral_raw_gates";
const Family& family_mixtral_raw();

double decoder_param_count(const ModelConfig& c);
ParamCounts decoder_param_counts(const ModelConfig& c);
double decoder_arena_bytes(const ModelConfig& c, int B, int T, bool recompute, double* layer);
// Matmul parameters (every 2-D weight used as a linear, the lm_head and MoE routers
// included; embedding lookups excluded; of the [E, ...] expert weights, the K experts
// a token uses) times 6, plus 12 L T C.
double model_train_flops_per_token(const Model& m, int T);

std::unique_ptr<TextGenerator> decoder_generator(LanguageModel& m, const Tokenizer& tok, const std::string& tok_path,
                                                  const std::string& dir);
void decoder_upcycle(const UpcycleRequest& r);

}  // namespace moe
