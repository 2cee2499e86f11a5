#include "model/checkpoint.h"

#include "data/tokenizer.h"

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "io/files.h"
#include "io/st_dir.h"

namespace moe {

namespace fs = std::filesystem;

void transpose_2d(float* out, const float* in, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) out[c * rows + r] = in[r * cols + c];
}

void read_hf_tensor(const TensorDir& src, const std::string& name, std::vector<int64_t> want, bool tr, float* dst,
                    const std::string& why) {
  const STEntry& e0 = src.at(name, why);
  const SafeTensorsFile& f = src.file_of(name);
  if (tr) std::swap(want[0], want[1]);
  const STEntry& e = f.expect(e0.name, want);
  if (e.dtype != STDType::F32 && e.dtype != STDType::BF16 && e.dtype != STDType::F16)
    throw std::runtime_error(f.path() + ": tensor '" + name + "' has dtype " + st_dtype_name(e.dtype) +
                             ", expected F32, BF16 or F16");
  f.check_finite(e);  // a NaN or Inf weight is refused, naming the tensor and index
  if (tr) {
    std::vector<float> tmp = f.read_f32(e);
    transpose_2d(dst, tmp.data(), want[0], want[1]);
  } else {
    f.read_f32(e, dst, size_t(e.numel()));
  }
  f.release(e);  // read once: the mapped pages need not stay resident
}

void model_check_tokenizer(const std::string& dir, int vocab_size) {
  const std::string tok = dir + "/tokenizer.model";
  if (path_exists(tok)) tokenizer_open_checked(tok, dir + "/config.json (vocab_size)", 1, vocab_size);
}

long checkpoint_dir_step(const std::string& name) {
  if (name.rfind("checkpoint-", 0) != 0 || name.size() == 11 || name.size() > 11 + 12) return -1;
  long step = 0;
  for (size_t i = 11; i < name.size(); i++) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

std::string checkpoint_missing(const std::string& dir) {
  if (!path_exists(dir + "/config.json")) return "config.json";
  if (!path_exists(dir + "/model.safetensors") && !path_exists(dir + "/model.safetensors.index.json"))
    return "model.safetensors";
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  // A plain model directory (HF, upcycled): the two files above are all it needs.
  if (checkpoint_dir_step(p.filename().string()) < 0) return "";
  for (const char* f : {"optimizer.safetensors", "trainer_state.json"})
    if (!path_exists(dir + "/" + f)) return f;
  return "";
}

std::string resolve_model_dir(const std::string& path_arg) {
  fs::path p = fs::path(path_arg).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "runs/a/" -> "runs/a"
  const std::string path = p.string();
  if (path_exists(path + "/config.json")) {
    const std::string missing = checkpoint_missing(path);
    if (!missing.empty())
      throw std::runtime_error(path + ": incomplete checkpoint (no " + missing +
                               "): a write or removal was interrupted; not used");
    return path_arg;
  }
  if (path_exists(path) && !is_dir(path))
    throw std::runtime_error(path + ": a file, not a model directory (give the directory that holds config.json and "
                             "model.safetensors, or a run directory)");
  if (!is_dir(path)) throw std::runtime_error(path + ": no such model or run directory");
  long best = -1;
  std::string found;
  int incomplete = 0;
  for (const auto& e : fs::directory_iterator(path)) {
    const long step = checkpoint_dir_step(e.path().filename().string());
    if (step < 0 || !e.is_directory()) continue;
    if (!checkpoint_missing(e.path().string()).empty()) {
      incomplete++;
      continue;
    }
    if (step > best) best = step, found = e.path().string();
  }
  if (found.empty())
    throw std::runtime_error(path + ": not a model directory (no config.json) and no complete checkpoint-N inside" +
                             (incomplete ? " (" + std::to_string(incomplete) + " incomplete ones skipped)" : std::string()));
  return found;
}

}  // namespace moe
