#include "train/state.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "io/failpoint.h"
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

namespace {

// The first parameter (or moment) of `buf` holding a NaN or Inf: "name[i]", or "".
std::string first_nonfinite(const LanguageModel& m, const float* buf) {
  for (const ParamSpec& s : m.layout().specs())
    for (int64_t i = 0; i < s.shape.numel(); i++)
      if (!std::isfinite(buf[s.offset + i])) return s.name + "[" + std::to_string(i) + "]";
  return "";
}

// checkpoint-N directories of a run, sorted by N.
std::vector<std::pair<long, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<long, std::string>> all;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string n = e.path().filename().string();
    long step = checkpoint_dir_step(n);
    if (step >= 0 && e.is_directory()) all.emplace_back(step, e.path().string());
  }
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

std::string checkpoint_write(const std::string& run_dir, const LanguageModel& m, const AdamW& opt, const TrainerState& st,
                             const std::string& tokenizer_path, int keep) {
  const std::string step_s = std::to_string(st.step);
  for (auto [what, buf] : {std::pair{"parameter", m.params().data()}, std::pair{"AdamW exp_avg of", opt.m().data()},
                           std::pair{"AdamW exp_avg_sq of", opt.v().data()}}) {
    const std::string bad = first_nonfinite(m, buf);
    if (!bad.empty())
      throw std::runtime_error("step " + step_s + ": " + what + " " + bad + " is not finite; checkpoint not written");
  }
  make_dirs(run_dir);
  const std::string name = "checkpoint-" + step_s;
  const std::string final_dir = run_dir + "/" + name;
  const std::string tmp = run_dir + "/.tmp-" + name + "-" + std::to_string(::getpid());
  remove_tree(tmp);
  make_dirs(tmp);
  try {
    m.save(tmp, STDType::F32);
    failpoint("checkpoint.model_written");
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
    fsync_dir(tmp);
    failpoint("checkpoint.before_commit");
    dir_commit(tmp, final_dir);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  failpoint("checkpoint.committed");
  // Keep the newest `keep` checkpoints. Each old one leaves the checkpoint-N namespace
  // (renamed to .trash-...) before it is deleted, so a kill mid-deletion never leaves
  // a half-deleted checkpoint-N behind; the trash goes at the next start.
  const auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep) < all.size(); i++) {
    const std::string trash = run_dir + "/.trash-checkpoint-" + std::to_string(all[i].first) + "-" +
                              std::to_string(::getpid());
    if (::rename(all[i].second.c_str(), trash.c_str()) != 0)
      throw std::runtime_error(all[i].second + ": cannot move aside for removal (" + std::strerror(errno) + ")");
    fsync_dir(run_dir);
    failpoint("checkpoint.prune_renamed");
    // Delete file by file so that a failpoint can stop in the middle, as a kill can.
    for (const auto& f : fs::directory_iterator(trash)) {
      fs::remove_all(f.path());
      failpoint("checkpoint.prune_file");
    }
    remove_tree(trash);
  }
  return final_dir;
}

std::vector<std::string> run_dir_cleanup(const std::string& run_dir) {
  return remove_stale_temps(run_dir, {".tmp-checkpoint-", ".trash-checkpoint-", ".old-checkpoint-", "log.jsonl.tmp."});
}

TrainerState trainer_state_load(const std::string& dir) {
  const std::string path = dir + "/trainer_state.json";
  nlohmann::json j = nlohmann::json::parse(file_read(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(path + ": invalid JSON");
  return TrainerState::from_json(j, path);
}

void optimizer_load(AdamW& opt, const LanguageModel& m, const std::string& dir) {
  auto f = SafeTensorsFile::open(dir + "/optimizer.safetensors");
  const ExpertSplit split = m.expert_split();
  for (const ParamSpec& s : m.layout().specs()) {
    std::vector<int64_t> shape = s.shape.vec();
    // A model holding part of the experts reads its rows of the stacked [E, ...] moments.
    const bool part = split.partial() && s.name.find('*') != std::string::npos;
    if (part) shape[0] = m.config().n_experts;
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      const STEntry& e = f.expect(kind + s.name, shape);
      if (e.dtype != STDType::F32)
        throw std::runtime_error(f.path() + ": tensor '" + e.name + "' must be F32 (exact resume)");
      FlatBuffer& buf = std::string(kind) == "exp_avg." ? opt.m() : opt.v();
      const size_t n = size_t(s.shape.numel());
      if (!part) {
        f.check_finite(e);
        f.read_f32(e, buf.data() + s.offset, n);
        continue;
      }
      const size_t first = n / size_t(s.shape[0]) * size_t(split.first(m.config().n_experts));
      std::memcpy(buf.data() + s.offset, static_cast<const char*>(f.data(e)) + first * sizeof(float), n * sizeof(float));
      for (size_t i = 0; i < n; i++)
        if (!std::isfinite(buf.data()[s.offset + i]))
          throw std::runtime_error(f.path() + ": tensor '" + e.name + "' holds a non-finite value at flat index " +
                                   std::to_string(first + i));
    }
  }
  if (f.tensors().size() != 2 * m.layout().specs().size())  // the same count, whatever the split
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
