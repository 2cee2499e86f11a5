// The Hugging Face files a checkpoint carries besides config.json and the weights, so
// that HF tools use it as it is: generation_config.json (moe generate's defaults),
// tokenizer_config.json and special_tokens_map.json (the SentencePiece tokenizer.model
// as a LlamaTokenizer without a dummy prefix), and README.md, the model card:
// architecture, data, steps, final losses and, for MoE, the routing of the last step.
#pragma once
#include <string>

#include "model/lm.h"
#include "train/state.h"

namespace moe {

// Writes the files into `dir` (a checkpoint being assembled; tokenizer.model already
// there when the run has one). `run_dir`'s log.jsonl gives the last training loss and
// routing; missing pieces are left out of the card, never guessed.
void hf_extras_write(const std::string& dir, const LanguageModel& m, const TrainerState& st, const std::string& run_dir);

}  // namespace moe
