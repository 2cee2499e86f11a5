// The moe binary as a user runs it: exit codes, one-line usage errors, and the
// `moe bench gemm --json` output (valid JSON lines, GEMM below the measured peak).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "tensor/cpu.h"

namespace {

using moe::clitest::lines_of;
using moe::clitest::Proc;
using moe::clitest::run_moe;
using moe::clitest::dataset;
using moe::clitest::q;
using moe::clitest::read_file;
using moe::clitest::TempDir;

// A usage error: exit 2, exactly one line on stderr, nothing on stdout.
void expect_usage_error(const std::string& args) {
  Proc r = run_moe(args);
  EXPECT_EQ(r.code, 2) << "moe " << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "moe " << args << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("moe: ", 0), 0u) << "moe " << args << "\nstderr: " << r.err;
  EXPECT_TRUE(r.out.empty()) << "moe " << args << "\nstdout: " << r.out;
}

}  // namespace

TEST(Cli, HelpListsBench) {
  Proc r = run_moe("--help");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("bench"), std::string::npos) << r.out;
}

TEST(Cli, BenchHelpListsGemm) {
  Proc r = run_moe("bench --help");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("gemm"), std::string::npos) << r.out;
}

TEST(Cli, Version) {
  Proc r = run_moe("--version");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("moe ") + MOE_VERSION + "\n");
}

TEST(Cli, UsageErrorsExit2WithOneLine) {
  expect_usage_error("");                                 // no subcommand
  expect_usage_error("--no-such-flag");                   // unknown global flag
  expect_usage_error("no-such-command");                  // unknown subcommand
  expect_usage_error("bench");                            // bench needs gemm
  expect_usage_error("bench gemm --no-such-flag");        // unknown flag of a sub-subcommand
  expect_usage_error("bench gemm --shapes no-such-set");  // bad value
  expect_usage_error("bench gemm --min-time -1");
  expect_usage_error("bench gemm --min-time abc");
  expect_usage_error("--threads -3 bench gemm");
}

// Checks `moe bench gemm --json` output: a peak line for `threads` threads, then
// one gemm line per (shape, dtype), each valid. Lines of GEMMs faster than the
// measured peak go to *beat_peak: the caller decides (see the tests below).
static void check_bench_json(const std::string& out, int threads, int fp32_expected, int bf16_expected,
                             std::vector<std::string>* beat_peak) {
  std::vector<std::string> lines = lines_of(out);
  ASSERT_EQ(lines.size(), size_t(1 + fp32_expected + bf16_expected)) << out;

  std::vector<nlohmann::json> js;
  for (const std::string& l : lines) {
    nlohmann::json j = nlohmann::json::parse(l, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << l;
    ASSERT_TRUE(j.is_object()) << l;
    js.push_back(j);
  }

  const nlohmann::json& peak = js[0];
  ASSERT_EQ(peak.value("kind", ""), "peak") << lines[0];
  EXPECT_EQ(peak.at("threads").get<int>(), threads) << lines[0];
  EXPECT_TRUE(peak.at("cpu").is_string()) << lines[0];
  const double fp32_peak = peak.at("fp32_gflops").get<double>();
  EXPECT_GT(fp32_peak, 0) << lines[0];
  double bf16_peak = 0;
  const bool amx = peak.value("amx_bf16", false);
  EXPECT_EQ(amx, moe::cpu_has_amx_bf16()) << lines[0];
  if (moe::cpu_has_avx512_bf16()) {
    ASSERT_TRUE(peak.at("bf16_gflops").is_number()) << lines[0];
    bf16_peak = peak.at("bf16_gflops").get<double>();
    EXPECT_GT(bf16_peak, 0) << lines[0];
  } else {
    EXPECT_TRUE(peak.at("bf16_gflops").is_null()) << lines[0];
  }
  // The tier and the bf16 route (this process reads the same ONEDNN_MAX_CPU_ISA as moe).
  EXPECT_EQ(peak.value("isa", ""), moe::isa_tier_name(moe::cpu_tier())) << lines[0];
  EXPECT_EQ(peak.value("bf16_gemm", ""), moe::bf16_gemm_route_name(moe::bf16_gemm_route())) << lines[0];
  // Widened bf16 GEMMs are f32 GEMMs: the fp32 FMA peak bounds them.
  if (moe::bf16_gemm_route() == moe::Bf16Gemm::Widen) bf16_peak = fp32_peak;

  int fp32_lines = 0, bf16_lines = 0;
  for (size_t i = 1; i < js.size(); ++i) {
    const nlohmann::json& g = js[i];
    ASSERT_EQ(g.value("kind", ""), "gemm") << lines[i];
    const std::string dtype = g.at("dtype").get<std::string>();
    ASSERT_TRUE(dtype == "fp32" || dtype == "bf16") << lines[i];
    (dtype == "fp32" ? fp32_lines : bf16_lines)++;
    EXPECT_EQ(g.at("threads").get<int>(), threads) << lines[i];
    EXPECT_GT(g.at("M").get<int>(), 0) << lines[i];
    EXPECT_GT(g.at("N").get<int>(), 0) << lines[i];
    EXPECT_GT(g.at("K").get<int>(), 0) << lines[i];
    EXPECT_TRUE(g.at("transA").is_boolean()) << lines[i];
    EXPECT_TRUE(g.at("transB").is_boolean()) << lines[i];
    const double best = g.at("gflops").get<double>(), median = g.at("gflops_median").get<double>();
    EXPECT_GT(best, 0) << lines[i];
    EXPECT_GT(median, 0) << lines[i];
    EXPECT_LE(median, best + 0.1) << "median above best (0.1: both rounded to 0.1). " << lines[i];

    const double pk = dtype == "fp32" ? fp32_peak : bf16_peak;
    if (pk <= 0) {  // bf16 emulated on AVX-512 without BF16: no peak to compare with
      EXPECT_TRUE(g.at("frac_peak").is_null()) << lines[i];
      continue;
    }
    // The printed figures are rounded (gflops and the peak to 0.1, frac_peak to 1e-4):
    // their rounding errors propagate into best / pk relatively (a loaded machine can
    // measure a small peak, which magnifies them).
    const double tol = 1e-4 + best / pk * (0.05 / best + 0.05 / pk) + 1e-9;
    EXPECT_NEAR(g.at("frac_peak").get<double>(), best / pk, tol) << lines[i];
    // With AMX, oneDNN's bf16 GEMMs run on the tile unit, which the vector peak loop
    // (vdpbf16ps) does not measure: no bound to check.
    if (dtype == "bf16" && amx) continue;
    // The sanity check of the peak loop: no GEMM can beat the FP pipes. A broken peak
    // loop (latency-bound, spilling, threads not counted) is off by 1.5-4x; the 5%
    // margin is for the two being measured at different moments (clock boost).
    if (best > 1.05 * pk) beat_peak->push_back(lines[0] + "\n" + lines[i]);
  }
  EXPECT_EQ(fp32_lines, fp32_expected);
  EXPECT_EQ(bf16_lines, bf16_expected);
}

// The quick configuration: two small shapes, both dtypes, ~1 s in all, on all cores.
// With more than one thread, other jobs on the machine (ctest -j, builds) can keep a
// thread off its core during the peak's windows and not during a GEMM's best call,
// so a GEMM above the peak fails only when it happens in 3 runs out of 3; a wrong
// peak loop does it every time. (One thread is checked strictly below.)
TEST(Cli, BenchGemmJson) {
  std::vector<std::string> beat_peak;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Proc r = run_moe("bench gemm --json --min-time 0.01 --shapes small");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    std::vector<std::string> beat;
    check_bench_json(r.out, moe::cpu_cores(), 2, 2, &beat);  // default threads: all cores
    if (HasFatalFailure() || beat.empty()) return;
    beat_peak.insert(beat_peak.end(), beat.begin(), beat.end());
  }
  std::string all;
  for (const std::string& b : beat_peak) all += b + "\n";
  ADD_FAILURE() << "GEMM faster than the measured peak in 3 runs of 3: the peak loop is wrong.\n" << all;
}

// moe's own ISA detection honours oneDNN's cap (tensor/cpu.h): under
// ONEDNN_MAX_CPU_ISA=AVX2 (or SSE41) any machine runs that tier, bf16 GEMMs widened to f32.
TEST(Cli, IsaCapTakesTheLowerTier) {
  for (const char* cap : {"AVX2", "SSE41"}) {
    SCOPED_TRACE(cap);
    Proc r = run_moe("--threads 1 bench gemm --json --min-time 0.01 --peak-time 0.05 --shapes small",
                     std::string("ONEDNN_MAX_CPU_ISA=") + cap + " ");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json peak = nlohmann::json::parse(lines_of(r.out).at(0));
    const std::string want = cap == std::string("AVX2") ? "avx2" : "sse41";
    // min(hardware, cap): a machine below the cap reports its own tier
    const std::string isa = peak.at("isa").get<std::string>();
    EXPECT_TRUE(isa == want || (want == "avx2" && isa == "sse41")) << r.out;
    EXPECT_EQ(peak.at("bf16_gemm"), "widen-to-f32") << r.out;
    EXPECT_EQ(peak.at("fp32_isa"), "avx2") << "the peak loop must not run AVX-512 under the cap\n" << r.out;
    EXPECT_EQ(peak.at("compute_auto"), "f32") << r.out;
    EXPECT_TRUE(peak.at("bf16_gflops").is_null()) << r.out;
    size_t bf16_rows = 0;
    for (const std::string& l : lines_of(r.out)) bf16_rows += l.find("\"dtype\":\"bf16\"") != std::string::npos;
    EXPECT_EQ(bf16_rows, 2u) << "bf16 GEMMs must run on this tier\n" << r.out;
  }
}

// --compute auto takes bf16 only with a native bf16 GEMM; the header says so and the
// recipe and the run keep the choice (so a resume on another machine computes alike).
TEST(Cli, ComputeAutoIsPrintedAndKept) {
  TempDir t("compute_auto");
  Proc r = run_moe("--threads 1 train --data " + q(dataset()) + " --out " + q(t / "run") +
                       " --preset tiny --steps 2 --batch 2 --seq 16 --compute auto --log-every 1",
                   "ONEDNN_MAX_CPU_ISA=AVX2 ");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find(", f32 (auto: avx2: no bf16 GEMM, bf16 would be widened to f32);"), std::string::npos)
      << "AVX2: auto is f32\n" << r.err;
  EXPECT_NE(r.err.find("cpu: isa avx2, f32 GEMM onednn-f32, bf16 GEMM widen-to-f32\n"), std::string::npos) << r.err;
  const nlohmann::json recipe = nlohmann::json::parse(read_file(t / "run/recipe.json"));
  EXPECT_EQ(recipe.at("compute"), "f32") << recipe.dump();
  Proc res = run_moe("--threads 1 train --out " + q(t / "run") + " --resume --steps 3", "ONEDNN_MAX_CPU_ISA=AVX2 ");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_NE(res.err.find(", f32 (the run's);"), std::string::npos) << res.err;
}

TEST(Cli, BenchGemmTable) {
  Proc r = run_moe("bench gemm --min-time 0.01 --peak-time 0.05 --shapes small --dtype fp32");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("measured peak"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("square_512"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("bf16  "), std::string::npos) << "--dtype fp32 ran bf16\n" << r.out;
}

// --threads is a global option; it is accepted after the subcommand too.
TEST(Cli, BenchGemmThreads) {
  for (const char* args : {"--threads 1 bench gemm", "bench gemm --threads 1"}) {
    SCOPED_TRACE(args);
    // One thread needs only one core at a time, but under ctest -j another job can still
    // take that core during the peak's short windows: as above, a GEMM above the peak
    // fails only when it happens in 3 runs out of 3.
    std::string all;
    for (int attempt = 0; attempt < 3; ++attempt) {
      Proc r = run_moe(std::string(args) + " --json --min-time 0.01 --peak-time 0.1 --shapes small --dtype fp32");
      ASSERT_EQ(r.code, 0) << args << ": " << r.err;
      std::vector<std::string> beat_peak;
      check_bench_json(r.out, 1, 2, 0, &beat_peak);
      if (HasFatalFailure() || beat_peak.empty()) {
        all.clear();
        break;
      }
      for (const std::string& b : beat_peak) all += b + "\n";
    }
    if (!all.empty()) ADD_FAILURE() << "GEMM faster than the measured peak in 3 runs of 3:\n" << all;
  }
}
