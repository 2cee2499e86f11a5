// The decoder families' model directories: config.json + model.safetensors under HF
// names (GPT-2's Conv1D weights transposed), every tensor checked against config.json.
#include "model/decoder/model_io.h"

#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "io/files.h"
#include "io/st_dir.h"
#include "model/checkpoint.h"

namespace moe {

std::map<std::string, TensorRole> model_roles(const ModelConfig& c) {
  std::map<std::string, TensorRole> out;
  const Family& fam = family_of(c.family);
  auto put = [&](Role r, int l) {
    try {
      out.emplace(fam.name(r, l), TensorRole{r, l});
    } catch (const std::logic_error&) {  // not a tensor of this family
    }
  };
  for (Role r : {Role::Embed, Role::Pos, Role::FinalNorm, Role::FinalNormBias, Role::LMHead}) put(r, 0);
  for (int l = 0; l < c.n_layer; l++)
    for (Role r : {Role::Norm1, Role::Norm1Bias, Role::QKV, Role::QKVBias, Role::Q, Role::K, Role::V, Role::O,
                   Role::OBias, Role::Norm2, Role::Norm2Bias, Role::Up, Role::UpBias, Role::Gate, Role::Down,
                   Role::DownBias, Role::Router, Role::ExpertW1, Role::ExpertB1, Role::ExpertW3, Role::ExpertW2,
                   Role::ExpertB2})
      put(r, l);
  return out;
}

bool hf_transposed(const Model& m, const std::string& name) {
  auto roles = model_roles(m.config());
  auto it = roles.find(name);
  return it != roles.end() && m.family().hf_transposed(it->second.role);
}

void model_load_params(Model& m, const TensorDir& src,
                       const std::function<std::string(const std::string&, const TensorRole*)>& source_name,
                       std::set<std::string>* used) {
  auto roles = model_roles(m.config());
  const std::string why = "config.json " + m.config().family + " model needs it";
  for (const ParamSpec& s : m.layout().specs()) {
    auto r = roles.find(s.name);
    const TensorRole* role = r == roles.end() ? nullptr : &r->second;
    const bool tr = role && m.family().hf_transposed(role->role);
    float* dst = m.params().data() + s.offset;
    std::vector<int64_t> shape = s.shape.vec();
    const std::string from = source_name ? source_name(s.name, role) : s.name;
    if (from.empty()) continue;  // the caller fills this one itself
    if (from.find('*') == std::string::npos) {
      read_hf_tensor(src, from, shape, tr, dst, why);
      if (used) used->insert(from);
      continue;
    }
    std::vector<int64_t> one(shape.begin() + 1, shape.end());
    const size_t per = size_t(s.shape.numel() / shape[0]);
    const int first = m.expert_split().first(m.config().n_experts);  // only the experts m holds are read
    for (int64_t e = 0; e < shape[0]; e++) {
      const std::string n = expert_tensor_name(from, first + int(e));
      read_hf_tensor(src, n, one, tr, dst + e * per, why);
      if (used) used->insert(n);
    }
  }
}

void model_save(const Model& m, const std::string& dir, STDType dtype) {
  if (dtype != STDType::F32 && dtype != STDType::BF16 && dtype != STDType::F16)
    throw std::invalid_argument("model_save: dtype must be F32, BF16 or F16");
  if (m.expert_split().partial())
    throw std::logic_error("model_save: the model holds part of the experts (gather them first)");
  auto roles = model_roles(m.config());
  nlohmann::json cfg = config_to_hf(m.config());
  cfg["torch_dtype"] = dtype == STDType::F32 ? "float32" : dtype == STDType::BF16 ? "bfloat16" : "float16";
  SafeTensorsWriter w;
  // Converted or transposed bytes, alive until write() (a training checkpoint's peak
  // memory: F32 tensors in our layout are written straight from the parameters).
  std::vector<std::vector<char>> store;
  // One HF tensor per parameter, or per expert for the [E, ...] expert tensors.
  auto emit = [&](const std::string& name, const float* src, std::vector<int64_t> shape, bool tr) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    if (dtype == STDType::F32 && !tr) {  // the bytes as they are: written from the parameters, no copy
      w.add(name, dtype, shape, src);
      return;
    }
    std::vector<float> tmp;
    if (tr) {
      tmp.resize(n);
      transpose_2d(tmp.data(), src, shape[0], shape[1]);
      std::swap(shape[0], shape[1]);
      src = tmp.data();
    }
    store.emplace_back(n * st_dtype_size(dtype));
    char* dst = store.back().data();
    st_encode_f32_checked(dst, src, n, dtype, name);
    w.add(name, dtype, shape, dst);
  };
  for (const ParamSpec& s : m.layout().specs()) {
    const float* src = m.params().data() + s.offset;
    std::vector<int64_t> shape = s.shape.vec();
    auto it = roles.find(s.name);
    const bool tr = it != roles.end() && m.family().hf_transposed(it->second.role);
    if (s.name.find('*') == std::string::npos) {
      emit(s.name, src, shape, tr);
      continue;
    }
    std::vector<int64_t> one(shape.begin() + 1, shape.end());
    const size_t per = size_t(s.shape.numel() / shape[0]);
    for (int64_t e = 0; e < shape[0]; e++) emit(expert_tensor_name(s.name, int(e)), src + e * per, one, tr);
  }
  w.set_metadata("format", "pt");
  file_write_atomic(dir + "/config.json", cfg.dump(2) + "\n");
  w.write(dir + "/model.safetensors");
}

void Model::save(const std::string& dir, STDType dtype) const { model_save(*this, dir, dtype); }

void model_load_weights(Model& m, const std::string& dir) {
  const TensorDir src = TensorDir::open(dir);
  std::set<std::string> used;
  model_load_params(m, src, nullptr, &used);
  std::set<std::string> others;  // expert parallelism: the experts other ranks hold
  if (m.expert_split().partial())
    for (const ParamSpec& s : m.layout().specs())
      if (s.name.find('*') != std::string::npos)
        for (int e = 0; e < m.config().n_experts; e++) others.insert(expert_tensor_name(s.name, e));
  for (const std::string& name : src.names()) {
    if (used.count(name) || others.count(name) || m.family().is_buffer(name)) continue;
    if (m.config().tied && name == m.name(Role::LMHead)) continue;  // a tied head saved anyway: same tensor
    throw std::runtime_error(src.file_of(name).path() + ": unexpected tensor '" + name + "' (not part of a " +
                             m.config().family + " model with this config.json)");
  }
}

std::unique_ptr<Model> model_load(const std::string& dir, ExpertSplit split) {
  const ModelConfig cfg = config_load(dir + "/config.json");
  auto m = std::make_unique<Model>(cfg, true, split);
  model_load_weights(*m, dir);
  return m;
}

}  // namespace moe
