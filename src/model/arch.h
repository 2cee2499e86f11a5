// What a family folder (model/decoder/, model/t5/, ...) provides, behind one table of
// hooks (Family::arch): its capabilities as data, building and loading its models,
// the memory and FLOP arithmetic of a config, its batch source, how it describes a
// config, and its generation and upcycling entry points. Nothing outside a family
// folder asks which family a config is; it asks the config's Arch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/family.h"
#include "model/lm.h"

namespace moe {

class BatchSource;
struct DatasetInfo;
class Tokenizer;
struct SampleOptions;

// What a run or a command may ask of a family. Every refusal of one comes from
// family_require (one message format), never from an `if` on the family.
enum class Capability {
  ExpertParallel,  // --expert-parallel (train, eval, bench)
  Recompute,       // --recompute
  Dropout,         // --dropout
  CarryOptimizer,  // moe upcycle --carry-optimizer
  ScaleToDense,    // moe upcycle --scale-to-dense
  ExportGguf,      // moe export --format gguf
  Generate,        // moe generate (and the generation_config.json of its checkpoints)
  Upcycle,         // moe upcycle
};
inline constexpr Capability kCapabilities[] = {Capability::ExpertParallel, Capability::Recompute,
                                               Capability::Dropout,        Capability::CarryOptimizer,
                                               Capability::ScaleToDense,   Capability::ExportGguf,
                                               Capability::Generate,       Capability::Upcycle};
// The flag or command that asks for a capability ("--expert-parallel").
const char* capability_flag(Capability c);
inline constexpr unsigned cap_bit(Capability c) { return 1u << unsigned(c); }

// How a model is built: trainable (gradient buffers) and the experts it holds, with the
// group of ranks holding the others (expert parallelism; handed to its MoE blocks).
struct BuildArgs {
  bool trainable = true;
  ExpertSplit split;
};

// Parameters of a config's model (no allocation). Active per token: everything but
// the experts a token does not use (E - K of E in every MoE layer).
struct ParamCounts {
  size_t total = 0, active = 0;
};

// The lines moe train and moe inspect print about a config; filled with the decoder
// wording by describe_config (model/describe.cpp), then the family's describe hook may
// change them.
struct ConfigText {
  std::string train_model;     // "model: llama, 4 layers, C=256, ..."
  std::string inspect_shape;   // "4 layers, hidden 256, ..."
  std::string train_capacity;  // "capacity factor 1.25 train / 2.00 eval (<= 0: dropless)"
  std::string inspect_capacity;
  std::string train_moe_suffix;  // after the moe: line's aux and z ("; encoder: expert choice")
  std::string inspect_routing;   // a further inspect line under moe (empty: none)
};

// A model's text interface for moe generate: the prompt as its input, the sampling
// loop, when a sample ends and how its tokens print.
class TextGenerator {
 public:
  virtual ~TextGenerator() = default;
  // The prompt's input ids (throws naming --prompt and what was expected).
  virtual std::vector<int32_t> input(const std::string& prompt) = 0;
  // Added to the "moe generate: seed ..." line (e.g. "; input 12 tokens (eos included)").
  virtual std::string note(const std::vector<int32_t>&) const { return ""; }
  virtual bool echoes_prompt() const { return true; }  // the prompt text is printed before each sample
  virtual int stop_token() const = 0;
  // One sample from `input`; on_token returns false to stop.
  virtual void run(const std::vector<int32_t>& input, const SampleOptions& s,
                   const std::function<bool(int32_t)>& on_token) = 0;
  virtual bool ended(int32_t t) const = 0;
  virtual std::string text_of(const std::vector<int32_t>& ids) const = 0;
};

// moe upcycle's request, whatever the family (cli/cmd_upcycle.cpp fills it).
struct UpcycleRequest;

struct Arch {
  const char* kind;   // "decoder-only", "encoder-decoder"
  unsigned caps;      // cap_bit(Capability) of what it supports

  // Adapts a new run's config to its dataset's pad id (after the dataset's bos/eos ids
  // are taken), then to the run's sequence length and capacity factor.
  void (*fit_dataset)(ModelConfig& c, int pad_id);
  void (*fit_seq)(ModelConfig& c, int seq, float capacity_factor);
  // Refuses MoE flags the family cannot take (--top-k, --routing), and applies its
  // fixed ones (e.g. raw gates), on a config made MoE from the flags.
  void (*fit_moe)(ModelConfig& c, bool top_k_given_other_than_1, bool routing_not_top_k);

  std::unique_ptr<LanguageModel> (*build)(const ModelConfig& c, const BuildArgs& a);
  std::unique_ptr<LanguageModel> (*load)(const std::string& dir, const BuildArgs& a);

  // The exact parameter counts (model/flops.h; the config-only arithmetic is the
  // Family's ConfigRules).
  ParamCounts (*param_counts)(const ModelConfig& c);

  // Data: the batches of a shard, the dataset check, and the shard tokens a row of
  // --seq tokens reads.
  std::unique_ptr<BatchSource> (*batches)(const DatasetInfo& ds, const ModelConfig& c, const std::string& shard,
                                          int B, int seq, uint64_t seed);
  void (*check_dataset)(const DatasetInfo& ds, const ModelConfig& c);
  double (*row_tokens)(int seq);
  // Decoder tokens of a row of `seq` input tokens (0: decoder-only; T5: span
  // corruption's targets).
  int (*decoder_tokens)(int seq);

  // Text (nullptr: the decoder wording of describe_config stands).
  void (*describe)(const ModelConfig& c, double params, ConfigText& t);
  // moe train's line on how a row of --seq tokens is made (nullptr: plain windows).
  void (*describe_rows)(int seq, std::string& line);
  void (*inspect_json)(const ModelConfig& c, nlohmann::ordered_json& j);
  // Hugging Face side files: generation_config.json and the tokenizer config's fields.
  void (*hf_generation)(const ModelConfig& c, nlohmann::ordered_json& gen);
  void (*hf_tokenizer)(const ModelConfig& c, int pieces, nlohmann::ordered_json& cfg, nlohmann::ordered_json& special);
  const char* card_tag;  // the model card's pipeline tag ("text-generation")
  std::string (*card_use)(const ModelConfig& c);  // the model card's paragraph on how to use it

  // Entry points (called only for a family with Capability::Generate, ::Upcycle).
  std::unique_ptr<TextGenerator> (*generator)(LanguageModel& m, const Tokenizer& tok, const std::string& tok_path,
                                                  const std::string& dir);
  void (*upcycle)(const UpcycleRequest& r);
  // The family's routing in a benchmark's MoE variant (e.g. T5: expert choice in the encoder).
  void (*bench_moe)(ModelConfig& c);
};

// The Arch registry (model/archs.cpp): a family folder's hooks by its name.
const Arch& arch_of(const ModelConfig& c);
const Arch& arch_of(const Family& f);
// Throws std::invalid_argument "<flag>: not implemented for <family> models yet" when
// c's family lacks the capability (`what`, when given, replaces the flag's name).
void family_require(const ModelConfig& c, Capability cap, const std::string& what = "");
bool family_can(const ModelConfig& c, Capability cap);

}  // namespace moe
