// The family seam (model/arch.h, model/families.cpp): every registered family answers
// every hook, and every capability refusal comes from family_require in one format.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "model/arch.h"
#include "model/family.h"

namespace moe {
namespace {

// A valid config of each model_type (its tiny preset; MoE variants made MoE).
ModelConfig config_of(const Family& f) {
  const std::string t = f.reads_as ? f.reads_as : f.model_type;
  if (t == "mixtral") {
    ModelConfig c = model_preset("mixtral", "tiny", 96);
    c.n_experts = 4, c.top_k = 2, c.moe_renormalize = std::string(f.model_type) == "mixtral";
    return c;
  }
  return model_preset(t, "tiny", 128);
}

TEST(Family, RegistryAnswersEveryHook) {
  std::set<std::string> seen;
  for (const Family* f : family_list()) {
    EXPECT_TRUE(seen.insert(f->model_type).second) << f->model_type << " registered twice";
    EXPECT_EQ(&family_of(f->model_type), f);
    ASSERT_NE(f->rules, nullptr) << f->model_type;
    const ConfigRules& r = *f->rules;
    const Arch& a = arch_of(*f);
    for (const void* hook : {(const void*)r.validate, (const void*)r.param_count, (const void*)r.arena_bytes,
                             (const void*)a.fit_dataset, (const void*)a.fit_seq,
                             (const void*)a.fit_moe, (const void*)a.build, (const void*)a.load,
                             (const void*)a.param_counts,
                             (const void*)a.batches, (const void*)a.check_dataset, (const void*)a.row_tokens,
                             (const void*)a.decoder_tokens, (const void*)a.card_use, (const void*)a.generator,
                             (const void*)a.upcycle})
      EXPECT_NE(hook, nullptr) << f->model_type << ": a required hook is missing";
    const ModelConfig c = config_of(*f);
    EXPECT_EQ(&arch_of(c), &a);
    // The arithmetic hooks agree with the model the build hook makes.
    auto m = a.build(c, BuildArgs{false, {}});
    EXPECT_EQ(a.param_counts(c).total, m->num_params()) << f->model_type;
    EXPECT_NEAR(r.param_count(c), double(m->num_params()), 0.5) << f->model_type;
  }
  for (const char* t : {"gpt2", "llama", "mixtral", "mixtral_raw_gates", "t5", "switch_transformers"})
    EXPECT_TRUE(seen.count(t)) << t << " is not registered";
  EXPECT_THROW(family_of("bert"), std::invalid_argument);
}

// Each family x each capability: allowed, or refused by family_require's one format.
TEST(Family, CapabilityRefusalsHaveOneFormat) {
  for (const Family* f : family_list()) {
    const ModelConfig c = config_of(*f);
    const bool decoder = std::string(arch_of(*f).kind) == "decoder-only";
    for (Capability cap : kCapabilities) {
      const std::string flag = capability_flag(cap);
      // Every family generates and upcycles; the rest is the decoders' so far.
      const bool all = cap == Capability::Generate || cap == Capability::Upcycle;
      EXPECT_EQ(family_can(c, cap), decoder || all) << f->model_type << " " << flag;
      if (family_can(c, cap)) {
        EXPECT_NO_THROW(family_require(c, cap)) << f->model_type << " " << flag;
        continue;
      }
      try {
        family_require(c, cap);
        ADD_FAILURE() << f->model_type << " " << flag << ": not refused";
      } catch (const std::invalid_argument& e) {
        const std::string want = flag + ": not implemented for " + c.family + " models yet (" + arch_of(*f).kind +
                                 "; it is for gpt2, llama, mixtral)";
        EXPECT_EQ(std::string(e.what()), want);
      }
      try {  // `what` names the place (a directory) instead of the flag alone
        family_require(c, cap, "/ckpt: " + flag);
      } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()).rfind("/ckpt: " + flag + ": not implemented for ", 0), 0u) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace moe
