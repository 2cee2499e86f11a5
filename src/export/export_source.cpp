#include "export/export_source.h"

#include <stdexcept>

#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/decoder/model.h"

namespace moe {

ExportSource export_source_open(const std::string& model) {
  const std::string dir = resolve_model_dir(model);
  ExportSource s{dir, config_load(dir + "/config.json"), TensorDir::open(dir), {}, 0};
  const ModelConfig& cfg = s.cfg;
  const std::string why = "config.json " + cfg.family + " model needs it";
  const auto roles = model_roles(cfg);
  const Family& fam = family_of(cfg.family);
  const ModelLayout layout = model_layout(cfg);  // names and shapes only: nothing allocated
  for (const ParamSpec& p : layout.layout.specs()) {
    const bool experts = p.name.find('*') != std::string::npos;
    std::vector<int64_t> shape = p.shape.vec();
    if (experts) shape.erase(shape.begin());
    const auto role = roles.find(p.name);
    if (role == roles.end()) throw std::logic_error("export: no role for tensor " + p.name);
    const bool tr = fam.hf_transposed(role->second.role);
    std::vector<int64_t> hf_shape = shape;
    if (tr) std::swap(hf_shape[0], hf_shape[1]);
    for (int e = 0; e < (experts ? cfg.n_experts : 1); e++) {
      const std::string name = experts ? expert_tensor_name(p.name, e) : p.name;
      const STEntry& entry = s.src.at(name, why);
      const SafeTensorsFile& f = s.src.file_of(name);
      f.expect(entry.name, hf_shape);
      if (entry.dtype != STDType::F32 && entry.dtype != STDType::BF16 && entry.dtype != STDType::F16)
        throw std::runtime_error(f.path() + ": tensor '" + name + "' has dtype " + st_dtype_name(entry.dtype) +
                                 ", expected F32, BF16 or F16");
      f.check_finite(entry, true);  // released block by block: resident memory stays small
      const Role r = role->second.role;
      const bool model_wide = r == Role::Embed || r == Role::Pos || r == Role::FinalNorm ||
                              r == Role::FinalNormBias || r == Role::LMHead;
      s.tensors.push_back({name, hf_shape, shape, tr, r, model_wide ? -1 : role->second.layer, experts ? e : -1});
      s.bytes += entry.nbytes;
    }
  }
  return s;
}

const SourceTensor* ExportSource::find(Role role, int layer, int expert) const {
  for (const SourceTensor& t : tensors)
    if (t.role == role && t.layer == layer && t.expert == expert) return &t;
  return nullptr;
}

std::vector<float> ExportSource::read(const SourceTensor& t) const {
  size_t n = 1;
  for (int64_t d : t.shape) n *= size_t(d);
  std::vector<float> v(n);
  read_hf_tensor(src, t.name, t.shape, t.transposed, v.data(), "config.json " + cfg.family + " model needs it");
  return v;
}

void ExportSource::read_rows(const SourceTensor& t, int64_t row, int64_t n, float* out) const {
  if (t.transposed) throw std::logic_error("export: read_rows of a transposed tensor");
  const size_t cols = t.shape.size() > 1 ? size_t(t.shape[1]) : 1;
  const STEntry& e = *src.find(t.name);
  const SafeTensorsFile& f = src.file_of(t.name);
  f.read_f32(e, size_t(row) * cols, size_t(n) * cols, out);
  f.release(e);
}

}  // namespace moe
