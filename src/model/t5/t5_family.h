// The t5 family folder's hooks (t5 and switch_transformers share them): what t5_arch()
// gathers into its Arch table (model/arch.h).
#pragma once
#include <memory>
#include <string>

#include "model/arch.h"
#include "model/family.h"
#include "upcycle/options.h"

namespace moe {

const Arch& t5_arch();
const ConfigRules& t5_rules();

// Whether c is of this folder (t5, switch_transformers), and HF switch_transformers.
bool t5_family(const ModelConfig& c);
bool t5_is_switch(const ModelConfig& c);

// T5 (T5ForConditionalGeneration): config fields only; its tensors are named by
// t5_layout (t5.h), which has encoder and decoder stacks the roles cannot say.
const Family& family_t5();
// HF switch_transformers (SwitchTransformersForConditionalGeneration): T5 with top-1
// experts in every sparse_step-th layer, capacity per sequence (t5.h).
const Family& family_switch();
// The sparse step (layer i sparse when step == 1 or i % step == 1) that gives c's MoE
// layers in both stacks, or -1 when none does.
int switch_sparse_step(const ModelConfig& c);

double t5_param_count(const ModelConfig& c);
ParamCounts t5_param_counts(const ModelConfig& c);
double t5_arena_bytes(const ModelConfig& c, int B, int T, bool recompute, double* layer);
// The training FLOPs of a row of Te encoder and Td decoder tokens, per token of the row.
double t5_train_flops_per_token(const ModelConfig& c, int Te, int Td);

std::unique_ptr<TextGenerator> t5_generator(LanguageModel& m, const Tokenizer& tok, const std::string& tok_path,
                                                  const std::string& dir);
void t5_upcycle_run(const UpcycleRequest& r);

}  // namespace moe
