#include "export/export_st.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "io/files.h"
#include "io/st_dir.h"
#include "io/st_shards.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/hf_json.h"

namespace moe {

namespace {

const char* torch_dtype(STDType t) {
  return t == STDType::F32 ? "float32" : t == STDType::BF16 ? "bfloat16" : "float16";
}

}  // namespace

ExportResult export_safetensors(const std::string& model, const std::string& out, STDType dtype, bool force) {
  if (dtype != STDType::F32 && dtype != STDType::BF16 && dtype != STDType::F16)
    throw std::invalid_argument("export: dtype must be f32, bf16 or f16");
  ExportResult r;
  r.dir = resolve_model_dir(model);
  const ModelConfig cfg = config_load(r.dir + "/config.json");
  const TensorDir src = TensorDir::open(r.dir);
  if (path_exists(out) && !force) throw std::runtime_error(out + ": already exists (give --force to replace it)");
  // The tensors config.json's model has, in the order of our layout (experts one by one),
  // each checked before anything is written: present, its HF shape, a float dtype, finite.
  struct Item {
    std::string name;
    std::vector<int64_t> shape;
  };
  std::vector<Item> items;
  const std::string why = "config.json " + cfg.family + " model needs it";
  const auto roles = model_roles(cfg);  // which tensors HF stores transposed
  const Family& fam = family_of(cfg.family);
  const ModelLayout layout = model_layout(cfg);  // names and shapes only: nothing allocated
  for (const ParamSpec& s : layout.layout.specs()) {
    const bool experts = s.name.find('*') != std::string::npos;
    std::vector<int64_t> shape = s.shape.vec();
    if (experts) shape.erase(shape.begin());
    const auto role = roles.find(s.name);
    const bool tr = role != roles.end() && fam.hf_transposed(role->second.role);
    if (tr) std::swap(shape[0], shape[1]);
    for (int e = 0; e < (experts ? cfg.n_experts : 1); e++) {
      const std::string name = experts ? expert_tensor_name(s.name, e) : s.name;
      const STEntry& entry = src.at(name, why);
      const SafeTensorsFile& f = src.file_of(name);
      f.expect(entry.name, shape);
      if (entry.dtype != STDType::F32 && entry.dtype != STDType::BF16 && entry.dtype != STDType::F16)
        throw std::runtime_error(f.path() + ": tensor '" + name + "' has dtype " + st_dtype_name(entry.dtype) +
                                 ", expected F32, BF16 or F16");
      f.check_finite(entry);
      f.release(entry);
      items.push_back({name, shape});
      r.bytes_in += entry.nbytes;
    }
  }
  ShardedWriter w("model");
  for (const Item& it : items) {
    const STEntry& entry = *src.find(it.name);
    const SafeTensorsFile& f = src.file_of(it.name);
    if (entry.dtype == dtype) {  // already in the dtype: the bytes as they are
      w.add_copy(it.name, dtype, it.shape, f.path(), f.file_offset(entry));
    } else {
      w.add(it.name, dtype, it.shape, [&f, &entry, dtype](std::vector<char>& scratch) {
        const std::vector<float> v = f.read_f32(entry);
        f.release(entry);
        scratch.resize(v.size() * st_dtype_size(dtype));
        st_encode_f32(scratch.data(), v.data(), v.size(), dtype);
        return static_cast<const void*>(scratch.data());
      });
    }
  }
  w.set_metadata("format", "pt");
  r.tensors = items.size();
  r.bytes_out = w.total_bytes();
  const std::string tmp = temp_dir_beside(out);
  try {
    w.write(tmp);
    nlohmann::json j = config_to_hf(cfg);
    j["torch_dtype"] = torch_dtype(dtype);
    file_write_atomic(tmp + "/config.json", j.dump(2) + "\n");
    // What a Hugging Face directory carries beside the weights (not the training state).
    for (const char* side : {"tokenizer.model", "generation_config.json", "tokenizer_config.json",
                             "special_tokens_map.json", "README.md"})
      if (path_exists(r.dir + "/" + side)) file_copy_atomic(r.dir + "/" + side, tmp + "/" + side);
    fsync_dir(tmp);
    dir_commit(tmp, out);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return r;
}

}  // namespace moe
