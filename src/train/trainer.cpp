#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "data/batches.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/files.h"
#include "model/flops.h"
#include "model/memory.h"
#include "moe/moe_layer.h"
#include "ops/clip.h"
#include "train/data_parallel.h"
#include "train/eval.h"
#include "train/state.h"

namespace moe {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Per MoE layer of the last forward: expert load (fraction of the kept (token, choice)
// pairs each expert took, and of all chosen pairs before dropping), drop fraction,
// router entropy, aux and z losses.
nlohmann::json moe_telemetry(const LanguageModel& m) {
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < m.layer_slots(); l++) {
    const MoeBlock* b = m.moe_block(l);
    if (!b) continue;
    // Over the global batch (all ranks' tokens under data parallelism).
    const int E = b->spec().E;
    const double pairs = double(b->global_tokens()) * b->spec().K;
    std::vector<double> load(E, 0.0), chosen(E, 0.0);
    for (int e = 0; e < E; e++) load[e] = double(b->global_counts()[e]) / pairs;
    for (int e = 0; e < E; e++) chosen[e] = double(b->global_chosen()[e]) / pairs;
    nlohmann::json j{{"layer", l}, {"load", load}, {"chosen", chosen}, {"drop", double(b->global_dropped()) / pairs},
                     {"dropped", b->global_dropped()},
                     {"entropy", b->router_entropy()}, {"aux", b->losses().aux}, {"z", b->losses().z}};
    // Expert choice (T5's encoder): every expert takes its capacity; a token's untaken
    // (token, expert) pairs are not drops, so they stay out of the summary's drop rate.
    if (b->spec().expert_choice) j["routing"] = "expert_choice";
    layers.push_back(j);
  }
  return layers;
}

// "moe aux 0.0102 drop 1.3% max-load 1.42x" over the MoE layers of the last forward.
std::string moe_summary(const nlohmann::json& layers) {
  if (layers.empty()) return "";
  double aux = 0, drop = 0, max_load = 0;
  int choosing = 0;  // layers whose tokens choose (expert choice drops nothing)
  for (const auto& l : layers) choosing += !l.contains("routing");
  for (const auto& l : layers) {
    aux += l["aux"].get<double>();
    if (!l.contains("routing")) drop += l["drop"].get<double>() / choosing;
    const auto& chosen = l["chosen"];
    for (const auto& v : chosen) max_load = std::max(max_load, v.get<double>() * chosen.size());
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "  moe aux %.4f drop %.1f%% max-load %.2fx", aux, 100 * drop, max_load);
  return buf;
}

// The first parameter tensor whose gradient is not finite.
std::string first_bad_grad(const LanguageModel& m, const FlatBuffer& g) {
  for (const ParamSpec& s : m.layout().specs())
    for (int64_t i = 0; i < s.shape.numel(); i++)
      if (!std::isfinite(g.data()[s.offset + i])) return s.name;
  return "(none)";
}

// Keeps the lines of log.jsonl whose step is at most `step` (the checkpoint being
// resumed; 0 for a new run), so that every step appears once: steps redone after a
// resume, and a torn last line of a killed writer, are dropped. Rewritten atomically.
void log_truncate_after(const std::string& path, int step) {
  if (!path_exists(path)) return;
  const std::string text = file_read(path);
  std::string kept;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) break;  // no newline: a torn write
    const std::string_view line(text.data() + b, e - b);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
        j["step"].get<int64_t>() <= step)
      kept.append(line).push_back('\n');
    b = e + 1;
  }
  if (kept.size() != text.size()) file_write_atomic(path, kept);
}

class JsonlLog {
 public:
  // An empty path: a log that writes nothing (ranks other than 0).
  explicit JsonlLog(const std::string& path) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::app);
    if (!out_) throw std::runtime_error(path + ": cannot open for appending");
  }
  void write(const nlohmann::json& j) {
    if (path_.empty()) return;
    out_ << j.dump() << "\n";
    out_.flush();
    if (!out_) throw std::runtime_error(path_ + ": write failed");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace

float clip_scale(double norm, float clip) {
  const double coef = clip > 0 ? double(clip) / (norm + 1e-6) : 1.0;
  return coef < 1.0 ? float(coef) : 1.0f;
}

void adamw_step_full(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float scale, Compute compute) {
  const bool bf = compute == Compute::BF16;
  bf16* copy = bf ? m.bf16_copy_for_update() : nullptr;
  opt.step(m.params(), m.grads(), hp, lr, scale, copy);
  if (bf) m.mark_bf16_fresh();
}

double apply_update(LanguageModel& m, AdamW& opt, const AdamWParams& hp, float lr, float clip, Compute compute) {
  const double norm = grad_norm(m.grads().data(), m.grads().numel());
  if (!std::isfinite(norm)) return norm;
  adamw_step_full(m, opt, hp, lr, clip_scale(norm, clip), compute);
  return norm;
}

namespace {

// One run of train(): set up (model, optimizer, data, log), then steps, validation and
// checkpoints, then the summary.
class TrainLoop {
 public:
  TrainLoop(TrainRun& run, Progress& progress);
  TrainSummary run(const std::function<bool()>& stop);

 private:
  void validate();
  void save();
  double epochs() const;
  // One optimizer step of cfg.accum micro-batches; false when a signal stopped the run.
  bool step(const std::function<bool()>& stop);
  void nonfinite(const std::string& what);  // a step whose loss or gradient is NaN/Inf
  void log_comm();

  TrainRun& run_;
  Progress& progress_;
  LanguageModel& m;
  std::unique_ptr<DataParallel> dpp_;
  DataParallel& dp;
  ExpertGroups* eg;
  TrainerState& st;
  const TrainConfig& cfg;
  const ModelConfig& mc;
  std::unique_ptr<BatchSource> train_src_, val_src_;
  int P = 1, Bl = 0;
  size_t row0 = 0;
  bool lead = true;
  std::unique_ptr<JsonlLog> log_;
  AdamWParams hp;
  size_t N = 0;  // tokens a global micro-batch reads (T5: encoder and decoder tokens)
  TokenBatch batch;
  int end_step = 0;
  double flops_per_token = 0;  // training FLOPs per token (6N + attention): log lines carry the run's cumulative FLOPs
  TrainSummary sum;
  double train_seconds = 0, window_loss = 0;
  uint64_t run_tokens = 0;
  int window_steps = 0;
  Clock::time_point last_save = Clock::now();
  int saved_step = -1;
  int skipped_in_a_row = 0;
};

TrainLoop::TrainLoop(TrainRun& run, Progress& progress)
    : run_(run),
      progress_(progress),
      m(*run.model),
      dpp_(std::make_unique<DataParallel>(run.comm, m.params().numel(), run.zero)),
      dp(*dpp_),
      eg(run.experts && run.experts->active() ? run.experts.get() : nullptr),
      st(run.state),
      cfg(st.config),
      mc(m.config()) {
  // Expert parallelism: the model was built holding its part (ExpertSplit, with the group).
  if (eg) dp.set_experts(eg, experts_begin(m.layout()), m.params().numel());
  if (!run.opt)  // fresh moments: under ZeRO-1 only this rank's shard is ever allocated
    run.opt = dp.zero() ? std::make_unique<AdamW>(m.layout(), dp.shard_ranges()) : std::make_unique<AdamW>(m.layout());
  if (dp.zero() && !run.opt->sharded()) run.opt = dp.shard_of(*run.opt, m.layout());  // ZeRO-1: keep this rank's shard
  lead = dp.rank() == 0;  // writes the log and the checkpoints
  cfg.validate();
  if (cfg.seq > mc.n_ctx)
    throw std::invalid_argument("--seq " + std::to_string(cfg.seq) + " exceeds the model's " +
                                std::to_string(mc.n_ctx) + " positions");

  m.set_recompute(cfg.recompute);
  DatasetInfo ds = dataset_open(cfg.data_dir);
  if (ds.vocab_size > mc.vocab_size)
    throw std::invalid_argument(cfg.data_dir + ": tokenizer has " + std::to_string(ds.vocab_size) +
                                " tokens but the model's vocabulary is " + std::to_string(mc.vocab_size));
  train_src_ = model_batches(ds, mc, ds.train_path, cfg.batch, cfg.seq, cfg.seed);
  // Validation masks (span corruption) do not depend on the run's seed: moe eval gives the same loss.
  val_src_ = model_batches(ds, mc, ds.val_path, cfg.batch, cfg.seq, 0);
  train_src_->set_shuffle(cfg.seed);
  train_src_->set_state(st.loader);

  // Data parallelism: rank r runs rows [r Bl, (r+1) Bl) of every global batch of B rows.
  P = dp.size(), Bl = cfg.batch / P;
  if (cfg.batch % P != 0)
    throw std::invalid_argument("--batch " + std::to_string(cfg.batch) + " must be a multiple of the " +
                                std::to_string(P) + " ranks (each runs an equal share of every batch)");
  row0 = size_t(dp.rank()) * Bl * cfg.seq;
  m.set_moe_group(dp.comm());

  if (lead) {
    make_dirs(cfg.out_dir);
    for (const std::string& n : run_dir_cleanup(cfg.out_dir))
      progress_.line("removed " + cfg.out_dir + "/" + n + " (left by a killed run)");
    log_truncate_after(cfg.out_dir + "/log.jsonl", st.step);
  }
  dp.barrier();
  log_ = std::make_unique<JsonlLog>(lead ? cfg.out_dir + "/log.jsonl" : "");
  hp = AdamWParams{cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay};
  N = size_t(cfg.batch) * size_t(train_src_->T() + train_src_->Td());
  end_step = run.stop_at > 0 ? std::min(run.stop_at, cfg.steps) : cfg.steps;
  flops_per_token = m.train_flops_per_token(train_src_->T(), train_src_->Td());
  last_save = Clock::now();  // --save-minutes counts from here, after the setup
}

void TrainLoop::validate() {
  // The ranks split the validation batches (whole batches, each routed on its own:
  // the one-process result on every rank).
  m.set_moe_group(eg ? eg->ep.get() : nullptr);  // expert parallelism: the group shares each batch
  EvalResult r = evaluate(m, *val_src_, cfg.eval_batches, cfg.compute, dp.comm(), eg ? eg->EP : 1);
  m.set_moe_group(dp.comm());
  st.val_loss = float(r.loss);
  st.val_step = st.step;
  log_->write({{"step", st.step}, {"val_loss", r.loss}, {"val_ppl", r.perplexity}, {"val_tokens", r.tokens},
               {"tokens", st.tokens}, {"flops", double(st.tokens) * flops_per_token}, {"elapsed", st.elapsed}});
  char buf[128];
  std::snprintf(buf, sizeof buf, "step %d: val loss %.4f (ppl %.1f) on %llu tokens", st.step, r.loss, r.perplexity,
                (unsigned long long)r.tokens);
  progress_.line(buf);
}

double TrainLoop::epochs() const {
  const LoaderState ls = train_src_->state();
  return double(ls.epoch) +
         double(ls.cursor) / double(train_src_->batches_per_epoch() * train_src_->shard_tokens_per_batch());
}

void TrainLoop::save() {
  last_save = Clock::now();
  saved_step = st.step;
  st.loader = train_src_->state();
  AdamW& opt = *run_.opt;
  // One Hugging Face directory whatever the layout: ZeRO-1 moments are gathered first.
  std::unique_ptr<AdamW> full = dp.zero() ? dp.gather(opt, m.layout()) : nullptr;
  std::unique_ptr<LanguageModel> whole = eg ? gather_model(m, *eg) : nullptr;  // expert parts: gathered on rank 0
  if (eg) full = gather_optimizer(full ? *full : opt, m, whole.get(), *eg);  // then the expert parts
  if (lead)
    sum.checkpoint = checkpoint_write(cfg.out_dir, whole ? *whole : m, full ? *full : opt, st, run_.tokenizer_path,
                                      cfg.keep);
  else sum.checkpoint = cfg.out_dir + "/checkpoint-" + std::to_string(st.step);
  dp.barrier();
  log_->write({{"step", st.step}, {"checkpoint", sum.checkpoint}});
}

void TrainLoop::nonfinite(const std::string& what) {
  if (skipped_in_a_row >= cfg.skip_nonfinite) {
    const std::string last = sum.checkpoint.empty() ? "" : "; the last checkpoint, " + sum.checkpoint + ", is intact";
    throw std::runtime_error("step " + std::to_string(st.step + 1) + ": " + what +
                             (cfg.skip_nonfinite ? " (after " + std::to_string(skipped_in_a_row) +
                                                       " skipped steps in a row, --skip-nonfinite " +
                                                       std::to_string(cfg.skip_nonfinite) + ")"
                                                 : std::string()) +
                             "; stopping, nothing saved" + last);
  }
  skipped_in_a_row++;
  progress_.line("step " + std::to_string(st.step + 1) + ": " + what + "; step skipped (no update, " +
                 std::to_string(skipped_in_a_row) + " of --skip-nonfinite " + std::to_string(cfg.skip_nonfinite) +
                 " in a row)");
}

bool TrainLoop::step(const std::function<bool()>& stop) {
  // A signal may reach the ranks at different steps: all stop at the first rank's.
  if (dp.mean(stop && stop() ? 1.0 : 0.0) > 0) return false;
  BatchSource& train_data = *train_src_;
  AdamW& opt = *run_.opt;
  const auto t0 = Clock::now();
  const float lr = lr_at(cfg, st.step);
  m.grads().zero();
  double loss = 0, moe_loss = 0;
  std::string bad;
  for (int micro = 0; micro < cfg.accum; micro++) {
    train_data.next(batch);
    if (!bad.empty()) continue;  // a skipped step still consumes its micro-batches: the data order stays the same
    ForwardOptions fo;
    fo.compute = cfg.compute;
    fo.dropout = cfg.dropout;
    fo.dropout_seed = cfg.seed ^ (uint64_t(st.step) << 20) ^ uint64_t(micro);
    fo.token_offset = int64_t(row0);  // masks by global index: the one-process masks
    // The mean over ranks: every rank sees the same (global) loss, NaN included.
    const float l = float(dp.mean(m.forward_rows(batch, dp.rank() * Bl, Bl, fo)));
    if (!std::isfinite(l)) {
      bad = "loss is " + std::to_string(l) + " (micro-batch " + std::to_string(micro) + ")";
      continue;
    }
    m.backward(1.0f / float(cfg.accum * P));  // this rank's share of the global mean
    loss += l / cfg.accum;
    moe_loss += m.moe_loss() / cfg.accum;
  }
  double norm = NAN;
  if (bad.empty()) {
    norm = dp.active() ? dp.update(m, opt, hp, lr, cfg.clip, cfg.compute)
                       : apply_update(m, opt, hp, lr, cfg.clip, cfg.compute);  // no update when not finite
    if (!std::isfinite(norm)) bad = "gradient is not finite in " + first_bad_grad(m, m.grads());
  }
  if (!bad.empty()) {
    nonfinite(bad);
    st.step++;
    st.tokens += N * cfg.accum;
    st.elapsed += seconds_since(t0);
    log_->write({{"step", st.step}, {"skipped", bad}, {"lr", lr}, {"tokens", st.tokens},
                 {"flops", double(st.tokens) * flops_per_token}, {"epoch", train_data.state().epoch}});
    return true;
  }
  skipped_in_a_row = 0;
  st.step++;
  st.tokens += N * cfg.accum;
  run_tokens += N * cfg.accum;
  const double dt = seconds_since(t0);
  train_seconds += dt;
  st.elapsed += dt;
  window_loss += loss, window_steps++;
  const double tps = double(N * cfg.accum) / dt;
  nlohmann::json line{{"step", st.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}, {"tokens_per_s", tps},
                      {"tokens", st.tokens}, {"flops", double(st.tokens) * flops_per_token},
                      {"elapsed", st.elapsed}, {"epoch", train_data.state().epoch}};
  std::string extra;
  if (mc.is_moe()) {
    line["moe_loss"] = moe_loss;
    line["moe"] = moe_telemetry(m);
    extra = moe_summary(line["moe"]);
  }
  char ep[32];
  std::snprintf(ep, sizeof ep, "  epoch %.2f", epochs());
  extra = ep + extra;
  log_->write(line);
  const double eta = train_seconds / std::max(1.0, double(run_tokens) / double(N * cfg.accum)) * (end_step - st.step);
  progress_.step(st.step, float(loss), lr, tps, eta, extra);
  if (st.step % cfg.log_every == 0 || st.step == end_step) {
    sum.train_loss = float(window_loss / window_steps);
    window_loss = 0, window_steps = 0;
  }
  if (cfg.eval_every > 0 && st.step % cfg.eval_every == 0 && st.step != cfg.steps) validate();
  if (cfg.save_every > 0 && st.step % cfg.save_every == 0 && st.step != end_step) save();
  else if (cfg.save_minutes > 0 && st.step != end_step &&
           dp.mean(seconds_since(last_save) >= 60 * cfg.save_minutes ? 1.0 : 0.0) > 0)  // any rank's clock: all save together
    save();
  return true;
}

// What the collectives moved (this rank's sends) and how long they took.
void TrainLoop::log_comm() {
  nlohmann::json comm = nlohmann::json::object();
  double bytes = 0, secs = 0;
  // With expert parallelism also the expert groups' (token rows, expert gradient sums).
  for (const auto& [kind, cs] : comm_stats_sum(eg ? eg->comms() : std::vector<const Comm*>{dp.comm()})) {
    comm[kind] = {{"bytes", cs.bytes}, {"seconds", cs.seconds}, {"calls", cs.calls}};
    bytes += cs.bytes, secs += cs.seconds;
  }
  log_->write({{"step", st.step}, {"comm", comm}, {"ranks", P}, {"expert_parallel", eg ? eg->EP : 1},
               {"zero", dp.zero()}, {"train_seconds", train_seconds}});
  char buf[160];
  std::snprintf(buf, sizeof buf, "communication (rank 0 of %d): %.1f MB sent in %.2f s, %.0f%% of the training time", P,
                bytes / 1e6, secs, train_seconds > 0 ? 100 * secs / train_seconds : 0.0);
  progress_.line(buf);
}

TrainSummary TrainLoop::run(const std::function<bool()>& stop) {
  bool stopped = false;
  while (st.step < end_step)
    if (!step(stop)) {
      stopped = true;
      break;
    }
  if (window_steps) sum.train_loss = float(window_loss / window_steps);
  progress_.finish();
  if (dp.active()) log_comm();
  if (st.step == cfg.steps && !stopped) validate();
  if (saved_step != st.step) save();  // (a stop right after a periodic save: that one is the last)
  sum.peak_rss_bytes = peak_rss_bytes();  // after the checkpoint write: the whole run's peak
  log_->write({{"step", st.step}, {"peak_rss_bytes", sum.peak_rss_bytes}, {"recompute", cfg.recompute}});
  sum.step = st.step;
  sum.val_loss = st.val_loss;
  sum.val_step = st.val_step;
  sum.epochs = epochs();
  sum.tokens_per_s = train_seconds > 0 ? double(run_tokens) / train_seconds : 0;
  return sum;
}

}  // namespace

TrainSummary train(TrainRun& run, Progress& progress, const std::function<bool()>& stop) {
  TrainLoop loop(run, progress);
  return loop.run(stop);
}

}  // namespace moe
