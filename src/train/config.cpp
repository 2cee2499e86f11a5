#include "train/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace moe {

const char* compute_name(Compute c) { return c == Compute::BF16 ? "bf16" : "f32"; }

Compute compute_parse(const std::string& s) {
  if (s == "f32" || s == "fp32") return Compute::F32;
  if (s == "bf16") return Compute::BF16;
  throw std::invalid_argument("--compute must be f32 or bf16, got \"" + s + "\"");
}

float lr_at(const TrainConfig& c, int step) {
  const int64_t s = int64_t(c.schedule_offset) + step;  // position in the schedule
  const int64_t total = int64_t(c.schedule_offset) + c.steps;
  if (c.warmup > 0 && s < c.warmup) return c.lr * float(s + 1) / float(c.warmup);
  if (c.schedule == "wsd") {
    const int64_t decay_from = total - c.decay_steps;
    if (c.decay_steps <= 0 || s < decay_from) return c.lr;
    const double progress = std::min(1.0, double(s - decay_from) / c.decay_steps);
    return float(c.lr + (double(c.min_lr) - c.lr) * progress);
  }
  if (c.schedule == "rsqrt") return float(c.lr * std::sqrt(double(std::max(1, c.warmup)) / double(s + 1)));
  const int64_t decay = std::max<int64_t>(1, total - c.warmup);  // cosine
  const double progress = std::min(1.0, double(s - c.warmup) / decay);
  return float(c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(M_PI * progress)));
}

std::string schedule_describe(const TrainConfig& c) {
  char b[160];
  if (c.schedule == "wsd" && c.decay_steps > 0)
    std::snprintf(b, sizeof b, "wsd: constant, then linear to %.3g over the last %d steps", c.min_lr, c.decay_steps);
  else if (c.schedule == "wsd")
    std::snprintf(b, sizeof b, "wsd: constant, no decay");
  else if (c.schedule == "rsqrt")
    std::snprintf(b, sizeof b, "rsqrt: lr sqrt(warmup / step)");
  else
    std::snprintf(b, sizeof b, "cosine to %.3g", c.min_lr);
  std::string r = b;
  if (c.schedule_offset > 0)
    r += ", continued from step " + std::to_string(c.schedule_offset) +
         (c.schedule_from.empty() ? std::string() : " of " + c.schedule_from);
  return r;
}

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument(what);
  };
  need(steps > 0, "--steps must be positive");
  need(batch > 0, "--batch must be positive");
  need(seq > 1, "--seq must be at least 2");
  need(accum > 0, "--accum must be positive");
  need(lr > 0 && std::isfinite(lr), "--lr must be positive");
  need(min_lr >= 0 && min_lr <= lr, "--min-lr must be in [0, lr]");
  need(warmup >= 0, "--warmup must be non-negative");
  need(schedule == "cosine" || schedule == "wsd" || schedule == "rsqrt",
       "--schedule must be cosine, wsd or rsqrt, got \"" + schedule + "\"");
  need(decay_steps >= 0, "--decay-steps must be non-negative");
  need(decay_steps == 0 || schedule == "wsd", "--decay-steps is for --schedule wsd");
  need(decay_steps <= steps, "--decay-steps " + std::to_string(decay_steps) + " must not exceed --steps " +
                                 std::to_string(steps) + " (the decay ends the run)");
  need(schedule_offset >= 0, "schedule_offset must be non-negative");
  need(weight_decay >= 0, "--weight-decay must be non-negative");
  need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "betas must be in [0, 1)");
  need(eps > 0, "--eps must be positive");
  need(clip >= 0, "--clip must be non-negative");
  need(dropout >= 0 && dropout < 1, "--dropout must be in [0, 1)");
  need(eval_every >= 0 && save_every >= 0, "--eval-every and --save-every must be non-negative");
  need(save_minutes >= 0 && std::isfinite(save_minutes), "--save-minutes must be non-negative");
  need(eval_batches > 0, "--eval-batches must be positive");
  need(keep > 0, "--keep must be positive");
  need(log_every > 0, "--log-every must be positive");
  need(skip_nonfinite >= 0, "--skip-nonfinite must be non-negative");
}

nlohmann::json TrainConfig::to_json() const {
  return {{"data_dir", data_dir}, {"out_dir", out_dir}, {"steps", steps}, {"batch", batch}, {"seq", seq},
          {"accum", accum}, {"lr", lr}, {"min_lr", min_lr}, {"warmup", warmup}, {"weight_decay", weight_decay},
          {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"clip", clip}, {"compute", compute_name(compute)},
          {"dropout", dropout}, {"seed", seed}, {"eval_every", eval_every}, {"eval_batches", eval_batches},
          {"save_every", save_every}, {"save_minutes", save_minutes}, {"keep", keep}, {"log_every", log_every},
          {"skip_nonfinite", skip_nonfinite}, {"recompute", recompute}, {"schedule", schedule},
          {"decay_steps", decay_steps}, {"schedule_offset", schedule_offset}, {"schedule_from", schedule_from}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& path) {
  TrainConfig c;
  try {
    c.data_dir = j.at("data_dir").get<std::string>();
    c.out_dir = j.at("out_dir").get<std::string>();
    c.steps = j.at("steps").get<int>();
    c.batch = j.at("batch").get<int>();
    c.seq = j.at("seq").get<int>();
    c.accum = j.at("accum").get<int>();
    c.lr = j.at("lr").get<float>();
    c.min_lr = j.at("min_lr").get<float>();
    c.warmup = j.at("warmup").get<int>();
    c.weight_decay = j.at("weight_decay").get<float>();
    c.beta1 = j.at("beta1").get<float>();
    c.beta2 = j.at("beta2").get<float>();
    c.eps = j.at("eps").get<float>();
    c.clip = j.at("clip").get<float>();
    c.compute = compute_parse(j.at("compute").get<std::string>());
    c.dropout = j.at("dropout").get<float>();
    c.seed = j.at("seed").get<uint64_t>();
    c.eval_every = j.at("eval_every").get<int>();
    c.eval_batches = j.at("eval_batches").get<int>();
    c.save_every = j.at("save_every").get<int>();
    c.save_minutes = j.value("save_minutes", 0.0);  // absent in runs from before it existed: off
    c.keep = j.at("keep").get<int>();
    c.log_every = j.at("log_every").get<int>();
    c.skip_nonfinite = j.value("skip_nonfinite", 0);  // absent in runs saved before it existed
    c.recompute = j.value("recompute", false);         // likewise
    c.schedule = j.value("schedule", std::string("cosine"));  // runs from before schedules: cosine
    c.decay_steps = j.value("decay_steps", 0);
    c.schedule_offset = j.value("schedule_offset", 0);
    c.schedule_from = j.value("schedule_from", std::string());
    c.validate();
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": bad training config: " + e.what());
  }
  return c;
}

}  // namespace moe
