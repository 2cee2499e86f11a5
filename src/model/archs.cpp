// The Arch registry: each family folder's hooks by its name (Family::folder), and the
// capability checks over them. A new folder adds its line here.
#include <cstring>
#include <stdexcept>

#include "model/arch.h"
#include "model/decoder/decoder.h"
#include "model/t5/t5_family.h"

namespace moe {

namespace {

struct ArchEntry {
  const char* folder;
  const Arch& (*arch)();
};
constexpr ArchEntry kArchs[] = {
    {"decoder", decoder_arch},
    {"t5", t5_arch},
};

}  // namespace

const Arch& arch_of(const Family& f) {
  for (const ArchEntry& a : kArchs)
    if (f.folder && std::strcmp(f.folder, a.folder) == 0) return a.arch();
  throw std::logic_error(std::string("model family ") + f.model_type + ": no Arch registered for its folder");
}

const Arch& arch_of(const ModelConfig& c) { return arch_of(family_of(c.family)); }


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
  return (arch_of(f).caps & cap_bit(cap)) != 0;
}

void family_require(const ModelConfig& c, Capability cap, const std::string& what) {
  if (family_can(c, cap)) return;
  std::string have;
  for (const Family* f : family_list())
    if ((arch_of(*f).caps & cap_bit(cap)) && (cap != Capability::ExportGguf || f->gguf_arch) && !f->reads_as) have += (have.empty() ? "" : ", ") + std::string(f->model_type);
  throw std::invalid_argument((what.empty() ? capability_flag(cap) : what) + ": not implemented for " + c.family +
                              " models yet (" + arch_of(c).kind + "; it is for " + have + ")");
}

}  // namespace moe
