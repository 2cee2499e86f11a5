// The registry: every model_type moe reads and writes, each defined in its family's
// folder (model/<folder>/family_*.cpp). A new model_type adds its line here; a new folder also its line in archs.cpp.
#include <stdexcept>

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

}  // namespace moe
