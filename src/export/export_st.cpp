#include "export/export_st.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "export/export_source.h"
#include "io/files.h"
#include "io/st_shards.h"

namespace moe {

namespace {

const char* torch_dtype(STDType t) {
  return t == STDType::F32 ? "float32" : t == STDType::BF16 ? "bfloat16" : "float16";
}

}  // namespace

ExportResult export_safetensors(const std::string& model, const std::string& out, STDType dtype, bool force) {
  if (dtype != STDType::F32 && dtype != STDType::BF16 && dtype != STDType::F16)
    throw std::invalid_argument("export: dtype must be f32, bf16 or f16");
  const ExportSource s = export_source_open(model);
  refuse_overlap(out, s.dir, "the checkpoint");
  if (path_exists(out) && !force) throw std::runtime_error(out + ": already exists (give --force to replace it)");
  ExportResult r;
  r.dir = s.dir;
  r.bytes_in = s.bytes;
  ShardedWriter w("model");
  for (const SourceTensor& it : s.tensors) {
    const STEntry& entry = *s.src.find(it.name);
    const SafeTensorsFile& f = s.src.file_of(it.name);
    if (entry.dtype == dtype) {  // already in the dtype: the bytes as they are
      w.add_copy(it.name, dtype, it.hf_shape, f.path(), f.file_offset(entry));
    } else {
      w.add(it.name, dtype, it.hf_shape, [&f, &entry, dtype, name = it.name](std::vector<char>& scratch) {
        const std::vector<float> v = f.read_f32(entry);
        f.release(entry);
        scratch.resize(v.size() * st_dtype_size(dtype));
        st_encode_f32_checked(scratch.data(), v.data(), v.size(), dtype, name);
        return static_cast<const void*>(scratch.data());
      });
    }
  }
  w.set_metadata("format", "pt");
  r.tensors = s.tensors.size();
  r.bytes_out = w.total_bytes();
  const std::string tmp = temp_dir_beside(out);
  try {
    w.write(tmp);
    nlohmann::json j = config_to_hf(s.cfg);
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
