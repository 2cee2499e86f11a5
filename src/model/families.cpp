// The registry: every model_type moe reads and writes, each defined in its family's
// folder. A new family adds its folder and its line here.
#include <stdexcept>

#include "model/arch.h"
#include "model/decoder/decoder.h"
#include "model/family.h"
#include "model/t5/t5_family.h"

namespace moe {

namespace {

using FamilyFn = const Family& (*)();
constexpr FamilyFn kFamilies[] = {
    family_gpt2, family_llama, family_mixtral, family_mixtral_raw, family_t5, family_switch,
};

const Family* find(const std::string& t) {
  for (FamilyFn f : kFamilies)
    if (t == f().model_type) return &f();
  return nullptr;
}

// "a, b or c" (quoted when q).
std::string names(bool q) {
  std::string s;
  const size_t n = std::size(kFamilies);
  for (size_t i = 0; i < n; i++) {
    s += i == 0 ? "" : i + 1 == n ? " or " : ", ";
    s += q ? std::string("\"") + kFamilies[i]().model_type + "\"" : kFamilies[i]().model_type;
  }
  return s;
}

}  // namespace

bool family_known(const std::string& t) { return find(t) != nullptr; }

std::vector<const Family*> family_list() {
  std::vector<const Family*> v;
  for (FamilyFn f : kFamilies) v.push_back(&f());
  return v;
}

std::string family_names_quoted() { return names(true); }

std::vector<std::string> family_train_choices() {
  std::vector<std::string> v;
  for (FamilyFn f : kFamilies)
    if (f().train_help) v.push_back(f().model_type);
  return v;
}

std::string family_train_help() {
  std::string s;
  for (FamilyFn f : kFamilies)
    if (f().train_help) s += (s.empty() ? "" : " | ") + std::string(f().train_help);
  return s;
}

const Family& family_of(const std::string& t) {
  if (const Family* f = find(t)) return *f;
  throw std::invalid_argument("unknown model family \"" + t + "\" (expected " + names(false) + ")");
}

const Family& family_to_write(const ModelConfig& c) {
  const Family& f = family_of(c.family);
  return f.writes_as ? f.writes_as(c) : f;
}

const Arch& arch_of(const ModelConfig& c) { return *family_of(c.family).arch; }

const char* capability_flag(Capability c) {
  switch (c) {
    case Capability::ExpertParallel: return "--expert-parallel";
    case Capability::Recompute: return "--recompute";
    case Capability::Dropout: return "--dropout";
    case Capability::CarryOptimizer: return "--carry-optimizer";
    case Capability::ScaleToDense: return "--scale-to-dense";
    case Capability::ExportGguf: return "--format gguf";
    case Capability::Generate: return "moe generate";
    case Capability::Upcycle: return "moe upcycle";
  }
  return "?";
}

bool family_can(const ModelConfig& c, Capability cap) {
  const Family& f = family_of(c.family);
  if (cap == Capability::ExportGguf && !f.gguf_arch) return false;  // llama.cpp's architecture is the model_type's
  return (f.arch->caps & cap_bit(cap)) != 0;
}

void family_require(const ModelConfig& c, Capability cap, const std::string& what) {
  if (family_can(c, cap)) return;
  std::string have;
  for (FamilyFn f : kFamilies)
    if ((f().arch->caps & cap_bit(cap)) && (cap != Capability::ExportGguf || f().gguf_arch) && !f().reads_as) have += (have.empty() ? "" : ", ") + std::string(f().model_type);
  throw std::invalid_argument((what.empty() ? capability_flag(cap) : what) + ": not implemented for " + c.family +
                              " models yet (" + arch_of(c).kind + "; it is for " + have + ")");
}

}  // namespace moe
