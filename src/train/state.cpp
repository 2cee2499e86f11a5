#include "train/state.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "io/files.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "train/hf_extras.h"

namespace moe {

namespace fs = std::filesystem;

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"tokens", tokens},
          {"loader", {{"cursor", loader.cursor}, {"epoch", loader.epoch}}},
          {"elapsed_seconds", elapsed},
          {"val_loss", std::isfinite(val_loss) ? nlohmann::json(val_loss) : nlohmann::json(nullptr)},
          {"val_step", val_step},
          {"init_from", init_from},
          {"config", config.to_json()},
          {"moe_version", MOE_VERSION}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& path) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int>();
    s.tokens = j.at("tokens").get<uint64_t>();
    s.loader.cursor = j.at("loader").at("cursor").get<uint64_t>();
    s.loader.epoch = j.at("loader").at("epoch").get<uint64_t>();
    s.elapsed = j.at("elapsed_seconds").get<double>();
    s.val_loss = j.at("val_loss").is_null() ? NAN : j.at("val_loss").get<float>();
    s.val_step = j.value("val_step", std::isfinite(s.val_loss) ? s.step : -1);
    s.init_from = j.value("init_from", "");
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": bad trainer state: " + e.what());
  }
  if (!j.contains("config")) throw std::runtime_error(path + ": bad trainer state: no \"config\"");
  s.config = TrainConfig::from_json(j["config"], path);
  if (s.step < 0) throw std::runtime_error(path + ": bad trainer state: negative step");
  return s;
}

std::string checkpoint_write(const std::string& run_dir, const Model& m, const AdamW& opt, const TrainerState& st,
                             const std::string& tokenizer_path, int keep) {
  const float* p = m.params().data();
  for (const ParamSpec& s : m.layout().specs())
    for (int64_t i = 0; i < s.shape.numel(); i++)
      if (!std::isfinite(p[s.offset + i]))
        throw std::runtime_error("step " + std::to_string(st.step) + ": parameter " + s.name +
                                 " is not finite; checkpoint not written");
  make_dirs(run_dir);
  const std::string name = "checkpoint-" + std::to_string(st.step);
  const std::string final_dir = run_dir + "/" + name;
  const std::string tmp = run_dir + "/.tmp-" + name + "-" + std::to_string(::getpid());
  remove_tree(tmp);
  make_dirs(tmp);
  try {
    model_save(m, tmp, STDType::F32);
    if (!tokenizer_path.empty()) file_copy_atomic(tokenizer_path, tmp + "/tokenizer.model");
    hf_extras_write(tmp, m, st, run_dir);  // generation/tokenizer configs, model card
    SafeTensorsWriter w;
    for (const ParamSpec& s : m.layout().specs()) {
      const std::vector<int64_t> shape = s.shape.vec();
      w.add_f32("exp_avg." + s.name, shape, opt.m().data() + s.offset);
      w.add_f32("exp_avg_sq." + s.name, shape, opt.v().data() + s.offset);
    }
    w.set_metadata("step", std::to_string(opt.t()));
    w.write(tmp + "/optimizer.safetensors");
    file_write_atomic(tmp + "/trainer_state.json", st.to_json().dump(2) + "\n");
    dir_commit(tmp, final_dir);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  // Keep the newest `keep` checkpoints.
  std::vector<std::pair<long, std::string>> all;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("checkpoint-", 0) != 0) continue;
    char* end = nullptr;
    long step = std::strtol(n.c_str() + 11, &end, 10);
    if (*end == 0) all.emplace_back(step, e.path().string());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + size_t(keep) < all.size(); i++) remove_tree(all[i].second);
  return final_dir;
}

TrainerState trainer_state_load(const std::string& dir) {
  const std::string path = dir + "/trainer_state.json";
  nlohmann::json j = nlohmann::json::parse(file_read(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(path + ": invalid JSON");
  return TrainerState::from_json(j, path);
}

void optimizer_load(AdamW& opt, const Model& m, const std::string& dir) {
  auto f = SafeTensorsFile::open(dir + "/optimizer.safetensors");
  for (const ParamSpec& s : m.layout().specs()) {
    const std::vector<int64_t> shape = s.shape.vec();
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      const STEntry& e = f.expect(kind + s.name, shape);
      if (e.dtype != STDType::F32)
        throw std::runtime_error(f.path() + ": tensor '" + e.name + "' must be F32 (exact resume)");
      FlatBuffer& buf = std::string(kind) == "exp_avg." ? opt.m() : opt.v();
      f.read_f32(e, buf.data() + s.offset, size_t(s.shape.numel()));
    }
  }
  if (f.tensors().size() != 2 * m.layout().specs().size())
    throw std::runtime_error(f.path() + ": has " + std::to_string(f.tensors().size()) + " tensors, expected " +
                             std::to_string(2 * m.layout().specs().size()) + " (two moments per parameter)");
  auto it = f.metadata().find("step");
  if (it == f.metadata().end()) throw std::runtime_error(f.path() + ": metadata has no \"step\"");
  try {
    opt.set_t(std::stoi(it->second));
  } catch (const std::exception&) {
    throw std::runtime_error(f.path() + ": metadata \"step\" is not an integer");
  }
}

}  // namespace moe
