#include "model/decoder/decoder.h"
#include "model/decoder/upcycle.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>

#include "io/files.h"
#include "io/st_dir.h"
#include "io/st_shards.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/flops.h"
#include "model/decoder/model.h"
#include "tensor/dtype.h"
#include "model/decoder/carry.h"
#include "upcycle/expert_init.h"

namespace moe {

namespace {

enum class Kind { Pass, Expert, Router };

// One output tensor and how it is made.
struct OutTensor {
  std::string name;
  std::string pattern;         // Expert: the name with '*' for the expert index
  STDType dtype;
  std::vector<int64_t> shape;  // as stored (HF orientation)
  Kind kind;
  std::string source;          // dense tensor (Pass, Expert)
  MlpPart part = MlpPart::In;  // Expert
  int axis = 0;                // Expert: unit axis of the dense tensor as stored
  int layer = 0, expert = 0;
  uint64_t salt = 0;
};

int64_t numel(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (int64_t d : v) n *= d;
  return n;
}

[[noreturn]] void bad_option(const std::string& what) { throw std::invalid_argument("moe upcycle: " + what); }

// float32 -> the output dtype, into scratch (a value beyond its range is refused).
const void* encode(const float* x, size_t n, const OutTensor& t, std::vector<char>& scratch) {
  scratch.resize(n * st_dtype_size(t.dtype));
  st_encode_f32_checked(scratch.data(), x, n, t.dtype, t.name);
  return scratch.data();
}

}  // namespace


struct Upcycler::Impl {
  UpcycleOptions opt;
  std::string dir;
  ModelConfig dc, mc;
  TensorDir src;
  std::vector<OutTensor> outs;
  std::vector<std::string> dropped;  // dense tensors deliberately not written (HF buffers, a tied head)
  float scale = 1, bias_scale = 1, router_std = 0;
  bool narrowed = false, scale_rounded = false;  // step 0 then differs by rounding
  STDType main_dtype = STDType::F32;
  // The f32 copy of the dense tensor the last expert came from (its E experts are consecutive).
  std::string cached;
  std::vector<float> dense_f32, work;
  TensorStats stats;

  ExpertRecipe recipe(int layer) const {
    ExpertRecipe r;
    r.E = opt.experts, r.G = opt.granularity, r.F = dc.n_inner;
    r.scale = scale, r.bias_scale = bias_scale;
    r.noise = opt.strategy == UpcycleStrategy::Noise ? opt.noise : 0.0f;
    r.drop_rate = opt.strategy == UpcycleStrategy::Drop ? opt.drop_rate : 0.0f;
    r.seed = opt.seed, r.layer = layer;
    return r;
  }
  bool identity(const OutTensor& t) const {
    const STEntry& e = *src.find(t.source);
    if (e.dtype != t.dtype) return false;
    if (t.kind == Kind::Pass) return true;
    ExpertRecipe r = recipe(t.layer);
    if (r.G != 1 || r.noise > 0 || r.drop_rate > 0) return false;
    return t.part == MlpPart::Out ? r.scale == 1.0f : t.part == MlpPart::OutBias ? r.bias_scale == 1.0f : true;
  }
  const void* produce(const OutTensor& t, std::vector<char>& scratch);
  // The next output tensor (declaration order) made from another dense tensor, or null.
  const OutTensor* next_source(const OutTensor& t) const {
    for (size_t i = size_t(&t - outs.data()) + 1; i < outs.size(); i++)
      if (outs[i].kind != Kind::Router && outs[i].source != t.source) return &outs[i];
    return nullptr;
  }
  const STEntry& entry(const OutTensor& t) const { return *src.find(t.source); }
  void plan();
  void check_options() const;
};

Upcycler::Upcycler(const std::string& dense, const UpcycleOptions& opt) : p_(std::make_unique<Impl>()) {
  Impl& p = *p_;
  p.opt = opt;
  p.dir = resolve_model_dir(dense);
  p.dc = config_load(p.dir + "/config.json");
  if (&arch_of(p.dc) != &decoder_arch())
    throw std::runtime_error(p.dir + ": a " + p.dc.family + " (encoder-decoder) model: moe upcycle takes decoder-only "
                             "models (gpt2, llama) so far");
  if (p.dc.is_moe())
    throw std::runtime_error(p.dir + "/config.json: already an MoE model (" + std::to_string(p.dc.n_experts) +
                             " experts); moe upcycle expects a dense checkpoint");
  p.src = TensorDir::open(p.dir);
  p.plan();
}

Upcycler::~Upcycler() = default;
const std::string& Upcycler::dense_dir() const { return p_->dir; }
const ModelConfig& Upcycler::dense_config() const { return p_->dc; }
const ModelConfig& Upcycler::moe_config() const { return p_->mc; }

// The options against each other and the dense model (usage errors).
void Upcycler::Impl::check_options() const {
  const int E = opt.experts, G = opt.granularity;
  if (E < 1) bad_option("--experts " + std::to_string(E) + ": expected at least 1");
  if (G < 1) bad_option("--granularity " + std::to_string(G) + ": expected at least 1");
  if (opt.strategy == UpcycleStrategy::Granular && G < 2)
    bad_option("--strategy granular needs --granularity G >= 2 (the MLP is split into G shards)");
  if (E % G != 0)
    bad_option("--experts " + std::to_string(E) + " must be a multiple of --granularity " + std::to_string(G) +
               " (experts form virtual groups of G shards)");
  if (dc.n_inner % G != 0)
    bad_option("--granularity " + std::to_string(G) + " must divide the MLP width " + std::to_string(dc.n_inner));
  if (opt.strategy == UpcycleStrategy::Noise && !(opt.noise > 0)) bad_option("--noise must be positive");
  if (opt.strategy == UpcycleStrategy::Drop && !(opt.drop_rate > 0 && opt.drop_rate <= 1))
    bad_option("--drop-rate must be in (0, 1]");
  if (opt.carry_optimizer && !path_exists(dir + "/optimizer.safetensors"))
    bad_option("--carry-optimizer: " + dir + " has no optimizer.safetensors (a training run's checkpoint-N has one)");
  if (opt.dtype != "keep" && opt.dtype != "f32" && opt.dtype != "bf16" && opt.dtype != "f16")
    bad_option("--dtype \"" + opt.dtype + "\": expected keep, f32, bf16 or f16");
}

void Upcycler::Impl::plan() {
  const int E = opt.experts, G = opt.granularity, K = opt.top_k;
  check_options();

  mc = dc;
  if (const char* moe_type = family_of(dc.family).with_experts) mc.family = moe_type;  // llama: mixtral
  mc.n_experts = E, mc.top_k = K, mc.moe_renormalize = opt.renormalize;
  mc.moe_layers = opt.layers, mc.moe_all_layers = opt.all_layers;
  mc.moe_inner = G > 1 ? dc.n_inner / G : 0;
  mc.capacity_factor = opt.capacity_factor, mc.eval_capacity_factor = opt.eval_capacity_factor;
  mc.aux_loss_coef = opt.aux_coef, mc.z_loss_coef = opt.z_coef;
  try {
    mc.validate();
  } catch (const std::invalid_argument& e) {
    bad_option(e.what());
  }
  // Scaling: with G > 1 each token sums K/G whole copies of the MLP, each weighted by
  // its gates; the down projection is scaled so that the sum equals the dense MLP
  // when the gates of the chosen experts add up to `mass` (1 renormalised; K/E raw,
  // the value at a uniform router).
  const float mass = opt.renormalize ? 1.0f : float(K) / float(E);
  if (opt.scale_to_dense && opt.renormalize)
    bad_option("--scale-to-dense is for --combine raw (renormalised gates already sum to 1 at step 0)");
  if (opt.scale_to_dense && opt.weight_scale > 0) bad_option("give --scale-to-dense or --weight-scale, not both");
  if (opt.weight_scale > 0) scale = opt.weight_scale, bias_scale = 1.0f;
  else if (G > 1 || opt.scale_to_dense) scale = float(G) / mass, bias_scale = 1.0f / mass;
  router_std = opt.router_std < 0 ? std::sqrt(0.1f / float(dc.n_embd)) : opt.router_std;

  const Family& df = family_of(dc.family);
  const Family& mf = family_of(mc.family);
  const ModelLayout dl = model_layout(dc), ml = model_layout(mc);
  const auto droles = model_roles(dc), mroles = model_roles(mc);
  std::set<std::string> used;
  const std::string why = "config.json describes a " + dc.family + " model that has it";
  // The dense tensor `name`, checked against the dense config's shape (ours; HF-transposed when tr).
  auto dense_entry = [&](const std::string& name) -> const STEntry& {
    const STEntry& e = src.at(name, why);
    const ParamSpec& s = dl.layout.at(name);
    std::vector<int64_t> want = s.shape.vec();
    if (df.hf_transposed(droles.at(name).role)) std::swap(want[0], want[1]);
    src.file_of(name).expect(name, want);
    if (e.dtype != STDType::F32 && e.dtype != STDType::BF16 && e.dtype != STDType::F16)
      throw std::runtime_error(src.file_of(name).path() + ": tensor '" + name + "' has dtype " +
                               st_dtype_name(e.dtype) + ", expected F32, BF16 or F16");
    used.insert(name);
    return e;
  };
  auto out_dtype = [&](STDType in) {
    if (opt.dtype == "f32") return STDType::F32;
    if (opt.dtype == "bf16") return STDType::BF16;
    if (opt.dtype == "f16") return STDType::F16;
    return in;
  };
  main_dtype = out_dtype(dense_entry(df.name(Role::Embed, 0)).dtype);
  for (const ParamSpec& s : ml.layout.specs()) {
    const TensorRole r = mroles.at(s.name);
    const bool tr = mf.hf_transposed(r.role);
    std::vector<int64_t> shape = s.shape.vec();
    if (r.role == Role::Router) {
      const STEntry& down = dense_entry(df.name(Role::Down, r.layer));
      outs.push_back({s.name, "", out_dtype(down.dtype), shape, Kind::Router, "", MlpPart::In, 0, r.layer, 0, 0});
      continue;
    }
    if (s.shape.ndim == 3 || r.role == Role::ExpertB1 || r.role == Role::ExpertB2) {
      MlpPart part;
      const Role dr = expert_source_role(r.role, dc.mlp, &part);
      const std::string dname = df.name(dr, r.layer);
      const STEntry& de = dense_entry(dname);
      const bool dtr = df.hf_transposed(dr);
      if (dtr != tr) throw std::logic_error("upcycle: expert and dense MLP orientations differ");
      const int axis = part == MlpPart::In ? (dtr ? 1 : 0) : part == MlpPart::Out ? (dtr ? 0 : 1) : 0;
      std::vector<int64_t> one(shape.begin() + 1, shape.end());
      if (tr) std::swap(one[0], one[1]);
      for (int e = 0; e < E; e++)
        outs.push_back({expert_tensor_name(s.name, e), s.name, out_dtype(de.dtype), one, Kind::Expert, dname, part,
                        axis, r.layer, e, uint64_t(r.role)});
      continue;
    }
    const std::string dname = df.name(r.role, r.layer);
    const STEntry& de = dense_entry(dname);
    if (tr) std::swap(shape[0], shape[1]);
    outs.push_back({s.name, "", out_dtype(de.dtype), shape, Kind::Pass, dname});
  }
  auto pow2 = [](float x) { return x > 0 && std::exp2(std::round(std::log2(x))) == x; };
  for (const OutTensor& t : outs) {
    if (t.kind == Kind::Router) continue;
    const STDType in = src.find(t.source)->dtype;
    if (t.dtype != in && t.dtype != STDType::F32) narrowed = true;
    if (t.kind == Kind::Expert && t.dtype != STDType::F32 &&
        ((t.part == MlpPart::Out && !pow2(scale)) || (t.part == MlpPart::OutBias && !pow2(bias_scale))))
      scale_rounded = true;
  }
  std::vector<std::string> left;
  for (const std::string& n : src.names()) {
    if (used.count(n)) continue;
    if (df.is_buffer(n) || (dc.tied && n == df.name(Role::LMHead, 0))) dropped.push_back(n);
    else left.push_back(n);
  }
  if (!left.empty()) {
    std::string list;
    for (size_t i = 0; i < left.size() && i < 5; i++) list += (i ? ", '" : "'") + left[i] + "'";
    if (left.size() > 5) list += " and " + std::to_string(left.size() - 5) + " more";
    throw std::runtime_error(src.file_of(left[0]).path() + ": tensor " + list + " not consumed by the upcycling (not "
                             "part of a " + dc.family + " model with this config.json); nothing written");
  }
}

const void* Upcycler::Impl::produce(const OutTensor& t, std::vector<char>& scratch) {
  const size_t n = size_t(numel(t.shape));
  if (t.kind == Kind::Router) {
    std::vector<float> w = router_init(opt.experts, opt.granularity, dc.n_embd, router_std, opt.seed, t.layer);
    return encode(w.data(), n, t, scratch);
  }
  const SafeTensorsFile& f = src.file_of(t.source);
  const STEntry& e = *f.find(t.source);
  if (const OutTensor* next = next_source(t)) src.file_of(next->source).prefetch(entry(*next));
  if (identity(t)) return f.data(e);  // bytes straight from the mapping
  if (t.kind == Kind::Pass) {
    work.resize(n);
    f.read_f32(e, work.data(), n);
    return encode(work.data(), n, t, scratch);
  }
  if (cached != t.source) {
    dense_f32.resize(size_t(e.numel()));
    f.read_f32(e, dense_f32.data(), dense_f32.size());
    stats = tensor_stats(dense_f32.data(), dense_f32.size());
    cached = t.source;
  }
  const int64_t rows = e.shape[0], cols = e.shape.size() == 2 ? e.shape[1] : 1;
  work.resize(n);
  make_expert(recipe(t.layer), t.part, t.axis, dense_f32.data(), rows, cols, stats, t.expert, t.salt, work.data());
  return encode(work.data(), n, t, scratch);
}

std::string Upcycler::exactness() const {
  const UpcycleOptions& o = p_->opt;
  std::vector<std::string> why;
  if (!o.renormalize)
    why.push_back("raw gates: each MLP output is multiplied by its gate probabilities (about K/E = " +
                  std::to_string(o.top_k) + "/" + std::to_string(o.experts) + " at a fresh router)" +
                  ((o.granularity > 1 || o.scale_to_dense) && o.weight_scale <= 0
                       ? ", compensated by the weight scaling only for a uniform router (--router-init zeros)"
                       : ""));
  if (o.strategy == UpcycleStrategy::Noise) why.push_back("noise is added to the experts");
  if (o.strategy == UpcycleStrategy::Drop) why.push_back("Drop-Upcycling re-initialises part of every expert");
  if (o.granularity > 1 && o.top_k % o.granularity != 0)
    why.push_back("top-k " + std::to_string(o.top_k) + " is not a multiple of the granularity " +
                  std::to_string(o.granularity) + " (whole virtual groups are not chosen)");
  if (o.weight_scale > 0) why.push_back("an explicit --weight-scale is applied");
  if (p_->narrowed) why.push_back("weights are rounded to the narrower --dtype");
  if (p_->scale_rounded) why.push_back("the scaled down projections are rounded to 16 bits (scale not a power of two)");
  if (why.empty()) {
    std::string s = "exact: step 0 computes the dense model's function";
    if (o.eval_capacity_factor > 0) s += " (as long as no token exceeds the evaluation capacity)";
    return s;
  }
  std::string s = "not exact: ";
  for (size_t i = 0; i < why.size(); i++) s += (i ? "; " : "") + why[i];
  return s;
}

nlohmann::ordered_json Upcycler::plan_json() const {
  const Impl& p = *p_;
  nlohmann::ordered_json j;
  j["from"] = p.dir;
  j["family"] = p.mc.family;
  j["experts"] = p.opt.experts, j["top_k"] = p.opt.top_k;
  j["combine"] = p.opt.renormalize ? "renorm" : "raw";
  static const char* strategies[] = {"copy", "noise", "drop", "granular"};
  j["strategy"] = strategies[int(p.opt.strategy)];
  j["granularity"] = p.opt.granularity;
  j["weight_scale"] = p.scale, j["bias_scale"] = p.bias_scale, j["scale_to_dense"] = p.opt.scale_to_dense;
  j["router_std"] = p.router_std;
  std::vector<int> layers;
  for (int l = 0; l < p.mc.n_layer; l++)
    if (p.mc.moe_layer(l)) layers.push_back(l);
  j["moe_layers"] = layers;
  const ParamCounts dpc = model_param_counts(p.dc), mpc = model_param_counts(p.mc);
  j["dense_params"] = dpc.total;
  j["params_total"] = mpc.total, j["params_active_per_token"] = mpc.active;
  uint64_t bytes = 0;
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const OutTensor& t : p.outs) {
    bytes += uint64_t(numel(t.shape)) * st_dtype_size(t.dtype);
    static const char* kinds[] = {"copy", "expert", "router"};
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", st_dtype_name(t.dtype)},
                       {"from", t.kind == Kind::Router ? "new" : t.source}, {"how", kinds[int(t.kind)]}});
  }
  j["bytes"] = bytes;
  j["dropped"] = p.dropped;
  j["step0"] = exactness();
  j["tensors"] = tensors;
  return j;
}

std::string Upcycler::plan_text(bool list_tensors) const {
  const Impl& p = *p_;
  const nlohmann::ordered_json j = plan_json();
  std::ostringstream o;
  char buf[512];
  std::snprintf(buf, sizeof buf, "upcycle %s (%s, %d layers) -> %s: %d experts, top-%d %s, strategy %s",
                p.dir.c_str(), p.dc.family.c_str(), p.dc.n_layer, p.mc.family.c_str(), p.opt.experts, p.opt.top_k,
                p.opt.renormalize ? "renormalised" : "raw gates", j["strategy"].get<std::string>().c_str());
  o << buf;
  if (p.opt.granularity > 1) o << " (granularity " << p.opt.granularity << ", expert width " << p.mc.moe_inner << ")";
  o << "\n  MoE layers " << j["moe_layers"].dump() << "\n";
  // Tensors: experts of one dense tensor on one line.
  for (size_t i = 0; i < p.outs.size(); i++) {
    const OutTensor& t = p.outs[i];
    if (!list_tensors) break;
    if (t.kind == Kind::Expert) {
      if (t.expert != 0) continue;
      std::string pat = t.pattern;
      pat.replace(pat.find('*'), 1, "{0.." + std::to_string(p.opt.experts - 1) + "}");
      std::snprintf(buf, sizeof buf, "  %-62s %-14s %-5s <- %s (%d experts)\n", pat.c_str(), shape_string(t.shape).c_str(),
                    st_dtype_name(t.dtype), t.source.c_str(), p.opt.experts);
    } else {
      std::snprintf(buf, sizeof buf, "  %-62s %-14s %-5s <- %s\n", t.name.c_str(), shape_string(t.shape).c_str(),
                    st_dtype_name(t.dtype), t.kind == Kind::Router ? "new router" : "copy");
    }
    o << buf;
  }
  for (const std::string& d : p.dropped) o << "  (not written: " << d << ", a buffer or the tied head)\n";
  std::snprintf(buf, sizeof buf,
                "  %zu tensors, %.2f MB; parameters %.2fM dense -> %.2fM total, %.2fM active per token\n",
                p.outs.size(), j["bytes"].get<double>() / 1e6, j["dense_params"].get<double>() / 1e6,
                j["params_total"].get<double>() / 1e6, j["params_active_per_token"].get<double>() / 1e6);
  o << buf << "  step 0: " << exactness() << "\n";
  return o.str();
}

void Upcycler::write(const std::string& out_arg, bool replace) {
  Impl& p = *p_;
  namespace fs = std::filesystem;
  fs::path outp = fs::path(out_arg).lexically_normal();
  if (outp.filename().empty()) outp = outp.parent_path();  // "runs/up/" -> "runs/up"
  const std::string out_dir = outp.string();
  if (out_dir.empty() || out_dir == "." || out_dir == "/") throw std::runtime_error("--out \"" + out_arg + "\": expected a new directory");
  // Never write over (or inside, or around) the checkpoint being read.
  refuse_overlap(out_dir, p.dir, "the dense checkpoint");
  if (path_exists(out_dir) && !replace)
    throw std::runtime_error(out_dir + ": already exists (give --force to replace it)");
  // Non-finite dense weights are refused before anything is written (plain copies
  // would otherwise carry them into every expert unseen).
  std::set<std::string> checked;
  for (const OutTensor& t : p.outs)
    if (t.kind != Kind::Router && checked.insert(t.source).second) p.src.file_of(t.source).check_finite(p.entry(t));
  ShardedWriter w("model", p.opt.max_shard_bytes);
  for (const OutTensor& t : p.outs) {
    if (t.kind != Kind::Router && p.identity(t)) {  // the dense bytes as they are: a kernel-side copy
      const SafeTensorsFile& f = p.src.file_of(t.source);
      w.add_copy(t.name, t.dtype, t.shape, f.path(), f.file_offset(p.entry(t)));
      continue;
    }
    w.add(t.name, t.dtype, t.shape, [&p, &t](std::vector<char>& scratch) { return p.produce(t, scratch); });
  }
  w.set_metadata("format", "pt");
  // A killed upcycle's temp directory (its PID gone) goes now; a failure removes ours below.
  const std::string tmp = temp_dir_beside(out_dir);
  try {
    w.write(tmp, [&p](size_t i) {  // done with a dense tensor once its experts are written
      const OutTensor& t = p.outs[i];
      const bool more = i + 1 < p.outs.size() && p.outs[i + 1].source == t.source;
      if (t.kind != Kind::Router && !more) p.src.file_of(t.source).release(p.entry(t));
    });
    nlohmann::json cfg = config_to_hf(p.mc);
    cfg["torch_dtype"] = p.main_dtype == STDType::F32 ? "float32" : p.main_dtype == STDType::BF16 ? "bfloat16" : "float16";
    file_write_atomic(tmp + "/config.json", cfg.dump(2) + "\n");
    nlohmann::ordered_json prov = plan_json();
    prov.erase("tensors");
    prov["seed"] = p.opt.seed;
    file_write_atomic(tmp + "/upcycling.json", prov.dump(2) + "\n");
    // The tokenizer, and the dense run's state (its data cursor: moe train --init OUT --continue-data).
    for (const char* f : {"tokenizer.model", "trainer_state.json"})
      if (path_exists(p.dir + "/" + f)) file_copy_atomic(p.dir + "/" + f, tmp + "/" + f);
    if (p.opt.carry_optimizer) upcycle_optimizer(p.dir, p.dc, p.mc, [&p](int l) { return p.recipe(l); }, tmp);
    fsync_dir(tmp);
    dir_commit(tmp, out_dir);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
}

}  // namespace moe
