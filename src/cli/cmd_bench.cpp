// moe bench gemm: GEMM GFLOP/s of our matmul against the machine's measured peak.
//   --json: one JSON object per line; first {"kind":"peak",...}, then one
//   {"kind":"gemm",...} per (shape, dtype). Otherwise a table.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/arch.h"
#include "model/family.h"
#include "model/memory.h"
#include "perf/gemm_bench.h"
#include "perf/peak.h"
#include "dist/comm.h"
#include "perf/train_bench.h"
#include "train/config.h"
#include "tensor/cpu.h"

namespace moe::cli {

namespace {

using ojson = nlohmann::ordered_json;

struct GemmOpts {
  bool json = false;
  double min_time = 0.5;
  double peak_time = 0.3;
  std::string shapes = "all";
  std::string dtype = "both";
};

// Rounded to `digits` decimals so that the JSON shows 444.9, not 444.90000000000003
// (n / 10^d is the double nearest the decimal, which prints shortest).
double round_to(double x, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

// A finite number of seconds > 0 (CLI::PositiveNumber prints DBL_MAX in full).
const CLI::Validator kSeconds(
    [](std::string& s) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v) || v <= 0 || v > 1e6)
        return "expected a positive number of seconds, got '" + s + "'";
      return {};
    },
    "SECONDS");

// 1-minute load average, or -1. Printed with the peak: figures measured while other
// jobs keep the cores busy are low (and a GEMM may then even beat the peak).
double load_average() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

void run_gemm(const GemmOpts& o) {
  const int threads = threads_get();
  const Peak peak = peak_measure(threads, o.peak_time);
  const std::string cpu = cpu_model_name();
  const std::vector<GemmShape> shapes = gemm_shapes(o.shapes);
  std::vector<DType> dtypes;
  if (o.dtype != "bf16") dtypes.push_back(DType::F32);
  if (o.dtype != "fp32") dtypes.push_back(DType::BF16);

  if (o.json) {
    ojson j;
    j["kind"] = "peak";
    j["threads"] = peak.threads;
    j["cpu"] = cpu;
    j["fp32_isa"] = peak.fp32_isa;
    j["fp32_gflops"] = round_to(peak.fp32_gflops, 1);
    j["bf16_gflops"] = peak.bf16_gflops ? ojson(round_to(*peak.bf16_gflops, 1)) : ojson(nullptr);
    // With AMX, bf16 GEMMs run on the tile unit: the vector peak above does not bound them.
    j["amx_bf16"] = cpu_has_amx_bf16();
    j["isa"] = isa_tier_name(cpu_tier());
    j["bf16_gemm"] = peak.bf16_gemm;
    j["compute_auto"] = compute_auto().bf16 ? "bf16" : "f32";
    j["loadavg"] = load_average();
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("cpu: %s, threads: %d, load average: %.2f\n", cpu.c_str(), peak.threads, load_average());
    std::printf("measured peak: fp32 (%s FMA) %.1f GFLOP/s, bf16 ", peak.fp32_isa, peak.fp32_gflops);
    if (peak.bf16_gflops)
      std::printf("(vdpbf16ps) %.1f GFLOP/s%s\n\n", *peak.bf16_gflops,
                  cpu_has_amx_bf16() ? " (this CPU has AMX: bf16 GEMMs on its tiles can exceed this vector peak)" : "");
    else
      std::printf("absent (no AVX512_BF16)\n");
    std::printf("%s%s; --compute auto: %s (%s)\n\n", cpu_compute_summary(),
                bf16_gemm_route() == Bf16Gemm::Widen ? " (bf16 rows: operands widened to f32; %peak of the fp32 peak)" : "",
                compute_auto().bf16 ? "bf16" : "f32", compute_auto().why.c_str());
    std::printf("%-5s %-14s %5s %5s %5s %2s %2s %9s %9s %6s %5s\n", "dtype", "shape", "M", "N", "K", "tA", "tB",
                "GFLOP/s", "median", "%peak", "reps");
    std::fflush(stdout);
  }

  for (DType dt : dtypes) {
    // 0 when there is no peak to compare with (bf16 on a CPU without AVX512_BF16).
    const double pk = dt == DType::F32 ? peak.fp32_gflops : peak.bf16_bound();
    const char* dname = dt == DType::F32 ? "fp32" : "bf16";
    for (const GemmShape& s : shapes) {
      const GemmResult r = gemm_bench(s, dt, o.min_time);
      const double frac = pk > 0 ? r.gflops() / pk : 0.0;
      if (o.json) {
        ojson j;
        j["kind"] = "gemm";
        j["dtype"] = dname;
        j["name"] = s.name;
        j["M"] = s.M;
        j["N"] = s.N;
        j["K"] = s.K;
        j["transA"] = s.transA;
        j["transB"] = s.transB;
        j["threads"] = threads;
        j["gflops"] = round_to(r.gflops(), 1);
        j["gflops_median"] = round_to(r.gflops_median(), 1);
        j["frac_peak"] = pk > 0 ? ojson(round_to(frac, 4)) : ojson(nullptr);
        j["reps"] = r.reps;
        std::cout << j.dump() << std::endl;
      } else {
        std::printf("%-5s %-14s %5d %5d %5d %2s %2s %9.1f %9.1f ", dname, s.name.c_str(), s.M, s.N, s.K,
                    s.transA ? "T" : "-", s.transB ? "T" : "-", r.gflops(), r.gflops_median());
        if (pk > 0)
          std::printf("%5.1f%% %5d\n", 100.0 * frac, r.reps);
        else
          std::printf("%6s %5d\n", "-", r.reps);
        std::fflush(stdout);
      }
    }
  }
}

struct TrainBenchOpts {
  bool json = false;
  double min_time = 3.0;
  double peak_time = 0.3;
  std::vector<std::string> presets{"small"};
  std::vector<std::string> families{"llama", "gpt2"};
  std::string compute = "both";
  int batch = 8, seq = 256, vocab = 8192;
  int experts = 0, top_k = 1;  // > 0: also the MoE version (every other layer) and its step-time ratio
  float capacity = 1.25f;
  bool recompute = false;  // also each configuration with activation recomputation
  int expert_parallel = 1; // under mpirun: ranks that split the MoE variant's experts
  int zero = 0;            // under mpirun: ZeRO-1
};

// Training steps per second of the dense presets, as tokens/s and MFU: the model's
// FLOPs per second over the measured peak of the compute dtype (fp32 FMA for f32,
// vdpbf16ps for bf16) with the same threads.
void run_train_bench(const TrainBenchOpts& o) {
  const int threads = threads_get();
  const Peak peak = peak_measure(threads, o.peak_time);
  std::vector<Compute> computes;
  if (o.compute == "auto") computes.push_back(compute_from_flag("auto"));
  else {
    if (o.compute != "bf16") computes.push_back(Compute::F32);
    if (o.compute != "f32") computes.push_back(Compute::BF16);
  }
  if (!o.json)
    std::printf("cpu: %s, threads: %d, load average: %.2f; peak fp32 %.1f, bf16 %.1f GFLOP/s\n%s; --compute auto: "
                "%s (%s)\n\n", cpu_model_name().c_str(), threads, load_average(), peak.fp32_gflops,
                peak.bf16_gflops.value_or(0.0), cpu_compute_summary(), compute_auto().bf16 ? "bf16" : "f32",
                compute_auto().why.c_str());
  else
    std::cout << ojson{{"kind", "peak"}, {"threads", threads}, {"cpu", cpu_model_name()},
                       {"fp32_gflops", round_to(peak.fp32_gflops, 1)},
                       {"bf16_gflops", peak.bf16_gflops ? ojson(round_to(*peak.bf16_gflops, 1)) : ojson(nullptr)},
                       {"isa", isa_tier_name(cpu_tier())}, {"bf16_gemm", peak.bf16_gemm},
                       {"compute_auto", compute_auto().bf16 ? "bf16" : "f32"},
                       {"loadavg", load_average()}}
                     .dump()
              << std::endl;
  for (const std::string& family : o.families)
    for (const std::string& preset : o.presets)
      for (Compute c : computes)
        for (int variant = 0; variant < (o.experts > 0 ? 2 : 1); variant++)
          for (int rc = 0; rc < (o.recompute ? 2 : 1); rc++) {
        ModelConfig cfg = model_preset(family, preset, o.vocab);
        if (o.seq > cfg.n_ctx) cfg.n_ctx = o.seq;
        static double dense_step = 0, plain_step = 0;
        if (variant == 1) {  // top-K MoE of the same per-token compute (K = 1: the same active parameters)
          cfg.n_experts = o.experts, cfg.top_k = o.top_k, cfg.capacity_factor = o.capacity;
          cfg.moe_renormalize = o.top_k > 1;
          if (const char* moe_type = family_of(cfg.family).with_experts) cfg.family = moe_type;  // llama: mixtral
          if (const auto bench_moe = arch_of(cfg).bench_moe) bench_moe(cfg);  // T5: expert choice in the encoder
        }
        TrainBenchDist dist;
        if (launched_by_mpi()) dist.comm = &comm_world();
        dist.expert_parallel = variant == 1 ? o.expert_parallel : 1;  // dense layers have no experts to split
        dist.zero = o.zero == 1;
        TrainBenchResult r = train_bench(cfg, preset, c, o.batch, o.seq, o.min_time, rc == 1, dist);
        if (variant == 0 && rc == 0) dense_step = r.best_step_s;
        if (rc == 0) plain_step = r.best_step_s;
        const double ratio = variant == 1 ? r.best_step_s / dense_step : 1.0;
        MemoryOptions mo;
        mo.bf16 = c == Compute::BF16, mo.recompute = rc == 1, mo.B = o.batch, mo.T = o.seq;
        mo.ranks = r.ranks, mo.expert_parallel = r.expert_parallel, mo.zero = r.zero;  // per rank under mpirun
        const double estimate = model_memory_estimate(cfg, mo).total();
        const double pk = c == Compute::F32 ? peak.fp32_gflops : peak.bf16_bound();
        const double mfu = pk > 0 ? r.gflops() / pk : 0.0;
        if (o.json) {
          ojson j{{"kind", "train"}, {"family", cfg.family}, {"preset", preset}, {"compute", compute_name(c)},
                  {"experts", cfg.n_experts}, {"top_k", cfg.top_k},
                  {"threads", threads}, {"B", r.B}, {"T", r.T}, {"Td", r.Td}, {"params", r.params},
                  {"flops_per_token", r.flops_per_token}, {"steps", r.steps},
                  {"step_ms", round_to(1e3 * r.best_step_s, 2)}, {"step_ms_median", round_to(1e3 * r.median_step_s, 2)},
                  {"tokens_per_s", round_to(r.tokens_per_s(), 1)},
                  {"tokens_per_s_median", round_to(r.tokens_per_s_median(), 1)}, {"gflops", round_to(r.gflops(), 1)},
                  {"mfu", pk > 0 ? ojson(round_to(mfu, 4)) : ojson(nullptr)}};
          if (variant == 1 && rc == 0) j["step_ratio_vs_dense"] = round_to(ratio, 4);
          j["recompute"] = rc == 1;
          if (rc == 1) j["step_ratio_vs_no_recompute"] = round_to(r.best_step_s / plain_step, 4);
          j["peak_rss_bytes"] = r.peak_rss_bytes;
          j["peak_rss_scope"] = r.peak_rss_own ? "config" : "process";
          j["activation_bytes"] = r.activation_bytes;
          j["estimate_bytes"] = estimate;
          if (r.ranks > 1) {
            j["ranks"] = r.ranks, j["expert_parallel"] = r.expert_parallel, j["zero"] = r.zero;
            j["comm_fraction"] = round_to(r.comm_fraction, 4);
            j["comm_bytes_per_step"] = r.comm_bytes_per_step;
            j["rank_peak_rss_bytes"] = r.rank_peak_rss_bytes;
          }
          std::cout << j.dump() << std::endl;
        } else {
          const std::string T = r.Td > 0 ? std::to_string(r.T) + "+" + std::to_string(r.Td) : std::to_string(r.T);
          std::printf("%-7s %-6s %-5s E=%d B=%d T=%s %6.2fM params: %8.0f tokens/s (median %8.0f), %6.1f GFLOP/s, MFU %.1f%%",
                      cfg.family.c_str(), preset.c_str(), compute_name(c), cfg.n_experts, r.B, T.c_str(),
                      double(r.params) / 1e6, r.tokens_per_s(), r.tokens_per_s_median(), r.gflops(), 100 * mfu);
          if (variant == 1 && rc == 0) std::printf(", step time %.3fx dense", ratio);
          if (rc == 1) std::printf(", recompute: step time %.3fx", r.best_step_s / plain_step);
          std::printf("\n        peak memory %s (%s; estimate %s)\n", bytes_human(r.peak_rss_bytes).c_str(),
                      r.peak_rss_own ? "this configuration" : "the process so far", bytes_human(estimate).c_str());
          if (r.ranks > 1) {
            std::string peaks;
            for (double b : r.rank_peak_rss_bytes) peaks += (peaks.empty() ? "" : ", ") + bytes_human(b);
            std::printf("        %d ranks (expert-parallel %d%s, global batch %d): %.0f%% of the step in collectives "
                        "(rank 0, waits included); peak memory per rank: %s\n", r.ranks, r.expert_parallel,
                        r.zero ? ", ZeRO-1" : "", r.B, 100 * r.comm_fraction, peaks.c_str());
          }
          std::fflush(stdout);
        }
      }
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Measure performance against the machine's measured peak");
  bench->require_subcommand(1);
  bench->fallthrough();  // global options (--threads) may follow the subcommand

  auto o = std::make_shared<GemmOpts>();
  CLI::App* gemm = bench->add_subcommand("gemm", "GEMM GFLOP/s of matmul (fp32) and matmul_bf16 on training shapes");
  gemm->fallthrough();
  gemm->add_flag("--json", o->json, "one JSON object per line: the peak, then one per GEMM");
  gemm->add_option("--min-time", o->min_time, "seconds to time each GEMM, at least (default 0.5)")
      ->check(kSeconds);
  gemm->add_option("--peak-time", o->peak_time, "seconds to measure each peak (default 0.3)")
      ->check(kSeconds);

  auto t = std::make_shared<TrainBenchOpts>();
  CLI::App* train = bench->add_subcommand("train", "Training tokens/s and MFU of the dense presets (f32, bf16)");
  train->fallthrough();
  train->add_flag("--json", t->json, "one JSON object per line: the peak, then one per configuration");
  train->add_option("--min-time", t->min_time, "seconds of timed steps per configuration, at least (default 3)")
      ->check(kSeconds);
  train->add_option("--peak-time", t->peak_time, "seconds to measure each peak (default 0.3)")->check(kSeconds);
  train->add_option("--preset", t->presets, "presets to run (default: small)")
      ->check(CLI::IsMember({"tiny", "small"}));
  train->add_option("--family", t->families,
                    "families to run (default: llama gpt2; t5: --seq encoder tokens and span corruption's targets)")
      ->check(CLI::IsMember(family_train_choices()));
  train->add_option("--compute", t->compute, "f32 | bf16 | both | auto (the machine's fastest)")
      ->check(CLI::IsMember({"f32", "bf16", "both", "auto"}));
  train->add_option("--batch", t->batch, "sequences per step (default 8)")->check(InRange(1, 4096));
  train->add_option("--seq", t->seq, "tokens per sequence (default 256)")->check(InRange(2, 65536));
  train->add_option("--vocab", t->vocab, "vocabulary size (default 8192)")->check(InRange(16, 1 << 20));
  train->add_option("--experts", t->experts, "also an MoE of E experts (every other layer) and its step time / dense")
      ->check(InRange(0, 1024));
  train->add_option("--top-k", t->top_k, "MoE experts per token (default 1)")->check(InRange(1, 1024));
  train->add_option("--expert-parallel", t->expert_parallel,
                    "under mpirun: ranks that split the MoE variant's experts (divides the ranks and --experts)")
      ->check(InRange(1, 4096));
  train->add_option("--zero", t->zero, "ZeRO stage under mpirun: 1 shards the AdamW moments over the ranks, 0 keeps them whole")
      ->check(InRange(0, 1));
  train->add_option("--capacity-factor", t->capacity, "MoE training capacity factor (default 1.25)")
      ->check(InRange(0.0, 100.0));
  train->add_flag("--recompute", t->recompute,
                  "also each configuration with activation recomputation: its step time / without, and both peaks");
  train->callback([t] { run_train_bench(*t); });
  gemm->add_option("--shapes", o->shapes, "shape set: small (quick), square, mlp (a transformer MLP, forward and backward), all (default)")
      ->check(CLI::IsMember(gemm_shape_sets()));
  gemm->add_option("--dtype", o->dtype, "which matmul to time (default both)")
      ->check(CLI::IsMember({"fp32", "bf16", "both"}));
  gemm->callback([o] { run_gemm(*o); });
}

}  // namespace moe::cli
