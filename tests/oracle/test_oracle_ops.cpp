// Every op against PyTorch. tests/oracle/ops_oracle.py (the ctest fixture
// oracle_generate) writes one safetensors file per case with torch's inputs,
// outputs, saved intermediates and gradients, computed in float64 on float32 inputs
// and rounded once; here both our fast path and our reference path (the _ref
// template with S = float) run on the same inputs and must match.
//
// Tolerances are derived from float32 epsilon and the length of the reductions
// involved, each with its reason next to it. Conventions checked too: activation
// gradients are assigned (their buffers start as NaN), parameter gradients
// accumulate (a second backward must give twice torch's gradient), outputs are
// written inside their bounds (guard zones).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/attention_general.h"
#include "ops/bias.h"
#include "ops/clip.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/relpos.h"
#include "ops/relu.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "testutil.h"

namespace moe {
namespace {

using test::all_close;
using test::Guarded;
using test::rms;
using test::scaled;

constexpr double kEps = 1.1920928955078125e-7;  // float32 machine epsilon, 2^-23
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ================================================================ case files

class OracleCase {
 public:
  explicit OracleCase(const std::string& name) : f_(open(name)) {}

  std::vector<float> f(const std::string& n) const { return f_.read_f32(f_.at(n)); }
  std::vector<int32_t> i32(const std::string& n) const { return f_.read_i32(f_.at(n)); }
  bool has(const std::string& n) const { return f_.find(n) != nullptr; }
  int dim(const std::string& k) const { return std::stoi(meta(k)); }
  uint64_t u64(const std::string& k) const { return std::stoull(meta(k)); }
  double real(const std::string& k) const { return std::stod(meta(k)); }
  float f32(const std::string& k) const { return float(real(k)); }  // exact: metadata holds a float32 value

 private:
  static SafeTensorsFile open(const std::string& name) {
    std::string path = std::string(MOE_TEST_BIN) + "/oracle_data/ops_" + name + ".safetensors";
    try {
      return SafeTensorsFile::open(path);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) +
                               " (written by tests/oracle/ops_oracle.py: the ctest fixture oracle_generate)");
    }
  }
  const std::string& meta(const std::string& k) const {
    auto it = f_.metadata().find(k);
    if (it == f_.metadata().end()) throw std::runtime_error(f_.path() + ": no metadata key '" + k + "'");
    return it->second;
  }
  SafeTensorsFile f_;
};

enum class Path { Fast, Ref };
const char* path_name(Path p) { return p == Path::Fast ? "fast path" : "reference path"; }
#define FOR_EACH_PATH(p) for (Path p : {Path::Fast, Path::Ref}) if (SCOPED_TRACE(path_name(p)); true)

// Values that are sums of K fp32 terms: rounding errors add like a random walk, so
// the error is ~eps * sqrt(K) times the typical magnitude of the result (blocked or
// pairwise orders, as oneDNN's, do better). 4x margin; 2 eps relative for the final
// rounding of ours and of the reference.
::testing::AssertionResult close_sum(const float* got, const std::vector<float>& want, double K,
                                     const std::string& what, double margin = 4.0) {
  return all_close(got, want.data(), want.size(), margin * kEps * std::sqrt(K) * rms(want), 2 * kEps, what);
}

// Per-element tolerances: |got - want| <= tol[i].
::testing::AssertionResult close_each(const float* got, const std::vector<float>& want,
                                      const std::vector<double>& tol, const std::string& what) {
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= tol[i])) {
      bad++;
      double r = std::isnan(d) ? 1e300 : d / std::max(tol[i], 1e-300);
      if (r > worst_ratio) worst_ratio = r, worst = i;
    }
  }
  if (!bad) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << want.size() << " elements differ; worst at "
                                       << worst << ": " << got[worst] << " vs " << want[worst] << " (tol "
                                       << tol[worst] << ")";
}

std::vector<float> load_into(const std::vector<float>& v, Guarded& g) {
  std::copy(v.begin(), v.end(), g.data());
  return v;
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

#define ORACLE_SUITE(Suite, ...)                                                                       \
  class Suite : public ::testing::TestWithParam<std::string> {};                                     \
  INSTANTIATE_TEST_SUITE_P(Cases, Suite, ::testing::Values(__VA_ARGS__), param_name);                \
  TEST_P(Suite, MatchesTorch)

// ================================================================ matmul

ORACLE_SUITE(OracleMatmul, "nn_small", "nt_small", "tn_small", "tt_small", "nn_small_acc", "nt_small_acc",
             "tn_small_acc", "tt_small_acc", "nn_large", "nt_large", "tn_large", "tt_large", "bf16_nn_small",
             "bf16_nt_small", "bf16_tn_small", "bf16_tt_small", "bf16_nn_small_acc", "bf16_nt_small_acc",
             "bf16_tn_small_acc", "bf16_tt_small_acc", "bf16_nn_large", "bf16_nt_large", "bf16_tn_large",
             "bf16_tt_large") {
  OracleCase c("matmul_" + GetParam());
  int M = c.dim("M"), N = c.dim("N"), K = c.dim("K");
  bool ta = c.dim("transA"), tb = c.dim("transB"), acc = c.dim("accumulate"), bf = c.dim("bf16");
  std::vector<float> A = c.f("A"), B = c.f("B"), want = c.f("C");
  std::vector<bf16> Ab(A.size()), Bb(B.size());
  if (bf) {  // what a bf16 caller does: round its fp32 operands once (nearest even)
    f32_to_bf16(Ab.data(), A.data(), A.size());
    f32_to_bf16(Bb.data(), B.data(), B.size());
    bf16_to_f32(A.data(), Ab.data(), A.size());  // the reference path runs on the rounded values
    bf16_to_f32(B.data(), Bb.data(), B.size());
  }
  FOR_EACH_PATH(path) {
    Guarded C(size_t(M) * N);
    if (acc) load_into(c.f("C0"), C);
    if (path == Path::Ref)
      matmul_ref<float>(C.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
    else if (bf)
      matmul_bf16(C.data(), Ab.data(), Bb.data(), M, N, K, ta, tb, acc);
    else
      matmul(C.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
    // fp32: a sum of K products (close_sum). bf16: the product of two bf16 values is
    // exact in fp32, so against torch on the same rounded inputs only the fp32
    // accumulation differs: the same tolerance.
    EXPECT_TRUE(close_sum(C.data(), want, K, "C"));
    EXPECT_TRUE(C.intact("C"));
  }
}

// ================================================================ linear

ORACLE_SUITE(OracleLinear, "small", "nobias", "large", "bf16_small", "bf16_large") {
  OracleCase c("linear_" + GetParam());
  int N = c.dim("N"), IC = c.dim("IC"), OC = c.dim("OC");
  bool bf = c.dim("bf16"), has_b = c.has("b");
  std::vector<float> inp = c.f("inp"), W = c.f("W"), dout = c.f("dout");
  std::vector<float> b = has_b ? c.f("b") : std::vector<float>();
  const float* bp = has_b ? b.data() : nullptr;
  std::vector<bf16> inp_b(inp.size()), W_b(W.size()), dout_b(dout.size());
  std::vector<float> dout_r = dout;  // dout as the reference path sees it (rounded for bf16)
  if (bf) {
    f32_to_bf16(inp_b.data(), inp.data(), inp.size());
    f32_to_bf16(W_b.data(), W.data(), W.size());
    f32_to_bf16(dout_b.data(), dout.data(), dout.size());
    bf16_to_f32(inp.data(), inp_b.data(), inp.size());
    bf16_to_f32(W.data(), W_b.data(), W.size());
    bf16_to_f32(dout_r.data(), dout_b.data(), dout.size());
  }
  std::vector<float> w_out = c.f("out"), w_dinp = c.f("dinp"), w_dW = c.f("dW");
  FOR_EACH_PATH(path) {
    Guarded out(size_t(N) * OC, kNaN), dinp(size_t(N) * IC, kNaN), dW(size_t(OC) * IC), db(OC);
    auto fwd = [&] {
      if (path == Path::Ref) linear_forward_ref<float>(out.data(), inp.data(), W.data(), bp, N, IC, OC);
      else if (bf) linear_forward_bf16(out.data(), inp_b.data(), W_b.data(), bp, N, IC, OC);
      else linear_forward(out.data(), inp.data(), W.data(), bp, N, IC, OC);
    };
    auto bwd = [&](float* di) {
      if (path == Path::Ref && !bf) {
        linear_backward_ref<float>(di, dW.data(), db.data(), dout.data(), inp.data(), W.data(), N, IC, OC);
      } else if (path == Path::Ref) {
        // The bf16 reference: dinp, dW from the rounded dout, db from the fp32 one.
        std::vector<float> db_rounded(OC);
        linear_backward_ref<float>(di, dW.data(), db_rounded.data(), dout_r.data(), inp.data(), W.data(), N, IC, OC);
        bias_backward_ref<float>(db.data(), dout.data(), N, OC);
      } else if (bf) {
        linear_backward_bf16(di, dW.data(), db.data(), dout.data(), dout_b.data(), inp_b.data(), W_b.data(), N, IC,
                             OC);
      } else {
        linear_backward(di, dW.data(), db.data(), dout.data(), inp.data(), W.data(), N, IC, OC);
      }
    };
    fwd();
    EXPECT_TRUE(close_sum(out.data(), w_out, IC, "out"));  // sums over IC (+ one bias add)
    bwd(dinp.data());
    EXPECT_TRUE(close_sum(dinp.data(), w_dinp, OC, "dinp"));  // sums over OC
    EXPECT_TRUE(close_sum(dW.data(), w_dW, N, "dW"));         // sums over N
    if (has_b) {
      EXPECT_TRUE(close_sum(db.data(), c.f("db"), N, "db"));
    }
    // Parameter gradients accumulate; dinp == nullptr skips the input gradient.
    bwd(nullptr);
    EXPECT_TRUE(close_sum(dW.data(), scaled(w_dW, 2), N, "dW after two backward calls"));
    if (has_b) {
      EXPECT_TRUE(close_sum(db.data(), scaled(c.f("db"), 2), N, "db after two backward calls"));
    }
    EXPECT_TRUE(close_sum(dinp.data(), w_dinp, OC, "dinp untouched by a backward with dinp == nullptr"));
    for (auto* g : {&out, &dinp, &dW, &db}) EXPECT_TRUE(g->intact("linear buffers"));
  }
}

// ================================================================ layernorm, rmsnorm

ORACLE_SUITE(OracleLayerNorm, "small", "nobias", "large", "offset") {
  OracleCase c("layernorm_" + GetParam());
  int N = c.dim("N"), C = c.dim("C");
  float eps = c.f32("eps");
  bool has_b = c.has("b");
  std::vector<float> inp = c.f("inp"), w = c.f("w"), dout = c.f("dout");
  std::vector<float> b = has_b ? c.f("b") : std::vector<float>();
  FOR_EACH_PATH(path) {
    Guarded out(size_t(N) * C, kNaN), mean(N, kNaN), rstd(N, kNaN), dinp(size_t(N) * C, kNaN), dw(C), db(C);
    const float* bp = has_b ? b.data() : nullptr;
    if (path == Path::Ref)
      layernorm_forward_ref<float>(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), bp, N, C, eps);
    else
      layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), bp, N, C, eps);
    // mean, variance: sums over C; out inherits their error (relative to its size).
    EXPECT_TRUE(close_sum(out.data(), c.f("out"), C, "out"));
    EXPECT_TRUE(close_sum(mean.data(), c.f("mean"), C, "mean"));
    EXPECT_TRUE(close_sum(rstd.data(), c.f("rstd"), C, "rstd"));
    auto bwd = [&] {
      if (path == Path::Ref)
        layernorm_backward_ref<float>(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                                      mean.data(), rstd.data(), N, C);
      else
        layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                           rstd.data(), N, C);
    };
    bwd();
    EXPECT_TRUE(close_sum(dinp.data(), c.f("dinp"), C, "dinp"));  // two sums over C per row
    EXPECT_TRUE(close_sum(dw.data(), c.f("dw"), N, "dw"));        // sums over N
    if (has_b) {
      EXPECT_TRUE(close_sum(db.data(), c.f("db"), N, "db"));
    }
    bwd();  // parameter gradients accumulate, dinp is assigned
    EXPECT_TRUE(close_sum(dw.data(), scaled(c.f("dw"), 2), N, "dw after two backward calls"));
    if (has_b) {
      EXPECT_TRUE(close_sum(db.data(), scaled(c.f("db"), 2), N, "db after two backward calls"));
    }
    EXPECT_TRUE(close_sum(dinp.data(), c.f("dinp"), C, "dinp after two backward calls"));
    for (auto* g : {&out, &mean, &rstd, &dinp, &dw, &db}) EXPECT_TRUE(g->intact("layernorm buffers"));
  }
}

ORACLE_SUITE(OracleRMSNorm, "small", "large", "offset") {
  OracleCase c("rmsnorm_" + GetParam());
  int N = c.dim("N"), C = c.dim("C");
  float eps = c.f32("eps");
  std::vector<float> inp = c.f("inp"), w = c.f("w"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(size_t(N) * C, kNaN), rstd(N, kNaN), dinp(size_t(N) * C, kNaN), dw(C);
    if (path == Path::Ref) rmsnorm_forward_ref<float>(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
    else rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
    EXPECT_TRUE(close_sum(out.data(), c.f("out"), C, "out"));  // mean of squares: a sum over C
    EXPECT_TRUE(close_sum(rstd.data(), c.f("rstd"), C, "rstd"));
    auto bwd = [&] {
      if (path == Path::Ref)
        rmsnorm_backward_ref<float>(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
      else
        rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
    };
    bwd();
    EXPECT_TRUE(close_sum(dinp.data(), c.f("dinp"), C, "dinp"));  // a sum over C per row
    EXPECT_TRUE(close_sum(dw.data(), c.f("dw"), N, "dw"));        // sums over N
    bwd();
    EXPECT_TRUE(close_sum(dw.data(), scaled(c.f("dw"), 2), N, "dw after two backward calls"));
    EXPECT_TRUE(close_sum(dinp.data(), c.f("dinp"), C, "dinp after two backward calls"));
    for (auto* g : {&out, &rstd, &dinp, &dw}) EXPECT_TRUE(g->intact("rmsnorm buffers"));
  }
}

// ================================================================ elementwise activations

// gelu, silu, swiglu: a handful of roundings plus exp/tanh (libm or a vector
// approximation) within a few ulp: 8 eps relative. Where the activation
// saturates towards 0 (1 + tanh, or x * sigmoid(x) for x << 0) the result is a
// difference of O(1) quantities, so the error is absolute: 4 eps of the typical
// magnitude (rms) of the values.
::testing::AssertionResult close_act(const float* got, const std::vector<float>& want, const std::string& what) {
  return all_close(got, want.data(), want.size(), 4 * kEps * rms(want), 8 * kEps, what);
}

ORACLE_SUITE(OracleGelu, "small", "large") {
  OracleCase c("gelu_" + GetParam());
  size_t n = size_t(c.dim("n"));
  std::vector<float> inp = c.f("inp"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dinp(n, kNaN);
    if (path == Path::Ref) gelu_forward_ref<float>(out.data(), inp.data(), n);
    else gelu_forward(out.data(), inp.data(), n);
    EXPECT_TRUE(close_act(out.data(), c.f("out"), "out"));
    if (path == Path::Ref) gelu_backward_ref<float>(dinp.data(), inp.data(), dout.data(), n);
    else gelu_backward(dinp.data(), inp.data(), dout.data(), n);
    EXPECT_TRUE(close_act(dinp.data(), c.f("dinp"), "dinp"));
    // In place: dinp may alias dout.
    Guarded io(n);
    load_into(dout, io);
    if (path == Path::Ref) gelu_backward_ref<float>(io.data(), inp.data(), io.data(), n);
    else gelu_backward(io.data(), inp.data(), io.data(), n);
    EXPECT_TRUE(close_act(io.data(), c.f("dinp"), "dinp in place"));
    for (auto* g : {&out, &dinp, &io}) EXPECT_TRUE(g->intact("gelu buffers"));
  }
}

ORACLE_SUITE(OracleSilu, "small", "large") {
  OracleCase c("silu_" + GetParam());
  size_t n = size_t(c.dim("n"));
  std::vector<float> inp = c.f("inp"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dinp(n, kNaN), io(n);
    if (path == Path::Ref) silu_forward_ref<float>(out.data(), inp.data(), n);
    else silu_forward(out.data(), inp.data(), n);
    EXPECT_TRUE(close_act(out.data(), c.f("out"), "out"));
    if (path == Path::Ref) silu_backward_ref<float>(dinp.data(), inp.data(), dout.data(), n);
    else silu_backward(dinp.data(), inp.data(), dout.data(), n);
    EXPECT_TRUE(close_act(dinp.data(), c.f("dinp"), "dinp"));
    load_into(dout, io);
    if (path == Path::Ref) silu_backward_ref<float>(io.data(), inp.data(), io.data(), n);
    else silu_backward(io.data(), inp.data(), io.data(), n);
    EXPECT_TRUE(close_act(io.data(), c.f("dinp"), "dinp in place"));
    for (auto* g : {&out, &dinp, &io}) EXPECT_TRUE(g->intact("silu buffers"));
  }
}

ORACLE_SUITE(OracleSwiglu, "small", "large") {
  OracleCase c("swiglu_" + GetParam());
  size_t n = size_t(c.dim("n"));
  std::vector<float> gate = c.f("gate"), up = c.f("up"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dgate(n, kNaN), dup(n, kNaN);
    if (path == Path::Ref) swiglu_forward_ref<float>(out.data(), gate.data(), up.data(), n);
    else swiglu_forward(out.data(), gate.data(), up.data(), n);
    EXPECT_TRUE(close_act(out.data(), c.f("out"), "out"));
    if (path == Path::Ref)
      swiglu_backward_ref<float>(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
    else
      swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
    EXPECT_TRUE(close_act(dgate.data(), c.f("dgate"), "dgate"));
    EXPECT_TRUE(close_act(dup.data(), c.f("dup"), "dup"));
    for (auto* g : {&out, &dgate, &dup}) EXPECT_TRUE(g->intact("swiglu buffers"));
  }
}

// ReLU: a comparison and a select; torch's float64 result rounded to float32 is the
// input itself (or 0), so both paths must give it exactly, the gradient too (0 at the
// kink, as torch's).
ORACLE_SUITE(OracleRelu, "small", "large") {
  OracleCase c("relu_" + GetParam());
  size_t n = size_t(c.dim("n"));
  std::vector<float> inp = c.f("inp"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dinp(n, kNaN), io(n);
    if (path == Path::Ref) relu_forward_ref<float>(out.data(), inp.data(), n);
    else relu_forward(out.data(), inp.data(), n);
    EXPECT_TRUE(all_close(out.vec(), c.f("out"), 0, 0, "out"));
    if (path == Path::Ref) relu_backward_ref<float>(dinp.data(), inp.data(), dout.data(), n);
    else relu_backward(dinp.data(), inp.data(), dout.data(), n);
    EXPECT_TRUE(all_close(dinp.vec(), c.f("dinp"), 0, 0, "dinp"));
    load_into(dout, io);  // dinp may alias dout
    if (path == Path::Ref) relu_backward_ref<float>(io.data(), inp.data(), io.data(), n);
    else relu_backward(io.data(), inp.data(), io.data(), n);
    EXPECT_TRUE(all_close(io.vec(), c.f("dinp"), 0, 0, "dinp in place"));
    for (auto* g : {&out, &dinp, &io}) EXPECT_TRUE(g->intact("relu buffers"));
  }
}

// GeGLU against F.gelu(gate, approximate="tanh") * up: gelu's error (close_act) and one
// more rounding for the product, within close_act's 8 eps relative.
ORACLE_SUITE(OracleGeglu, "small", "large") {
  OracleCase c("geglu_" + GetParam());
  size_t n = size_t(c.dim("n"));
  std::vector<float> gate = c.f("gate"), up = c.f("up"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dgate(n, kNaN), dup(n, kNaN), io(n);
    if (path == Path::Ref) geglu_forward_ref<float>(out.data(), gate.data(), up.data(), n);
    else geglu_forward(out.data(), gate.data(), up.data(), n);
    EXPECT_TRUE(close_act(out.data(), c.f("out"), "out"));
    auto bwd = [&](float* dg, const float* d) {
      if (path == Path::Ref) geglu_backward_ref<float>(dg, dup.data(), d, gate.data(), up.data(), n);
      else geglu_backward(dg, dup.data(), d, gate.data(), up.data(), n);
    };
    bwd(dgate.data(), dout.data());
    EXPECT_TRUE(close_act(dgate.data(), c.f("dgate"), "dgate"));
    EXPECT_TRUE(close_act(dup.data(), c.f("dup"), "dup"));
    load_into(dout, io);  // dgate may alias dout
    bwd(io.data(), io.data());
    EXPECT_TRUE(close_act(io.data(), c.f("dgate"), "dgate in place"));
    EXPECT_TRUE(close_act(dup.data(), c.f("dup"), "dup (dgate in place)"));
    for (auto* g : {&out, &dgate, &dup, &io}) EXPECT_TRUE(g->intact("geglu buffers"));
  }
}

// ================================================================ residual, bias, dropout

TEST(OracleResidual, MatchesTorch) {
  OracleCase c("residual");
  size_t n = size_t(c.dim("n"));
  std::vector<float> a = c.f("a"), b = c.f("b"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), da(n), db(n);
    if (path == Path::Ref) residual_forward_ref<float>(out.data(), a.data(), b.data(), n);
    else residual_forward(out.data(), a.data(), b.data(), n);
    // One IEEE add is correctly rounded: the exact sum rounded once, as torch's. Exact.
    EXPECT_TRUE(all_close(out.vec(), c.f("out"), 0, 0, "out"));
    load_into(c.f("da0"), da);
    load_into(c.f("db0"), db);
    if (path == Path::Ref) residual_backward_ref<float>(da.data(), db.data(), dout.data(), n);
    else residual_backward(da.data(), db.data(), dout.data(), n);
    // The residual stream accumulates: da = da0 + dout, one correctly rounded add. Exact.
    EXPECT_TRUE(all_close(da.vec(), c.f("da_acc"), 0, 0, "da (accumulated)"));
    EXPECT_TRUE(all_close(db.vec(), c.f("db_acc"), 0, 0, "db (accumulated)"));
    // out may alias a.
    Guarded io(n);
    load_into(a, io);
    if (path == Path::Ref) residual_forward_ref<float>(io.data(), io.data(), b.data(), n);
    else residual_forward(io.data(), io.data(), b.data(), n);
    EXPECT_TRUE(all_close(io.vec(), c.f("out"), 0, 0, "out in place"));
    for (auto* g : {&out, &da, &db, &io}) EXPECT_TRUE(g->intact("residual buffers"));
  }
}

ORACLE_SUITE(OracleBias, "small", "large") {
  OracleCase c("bias_" + GetParam());
  int N = c.dim("N"), C = c.dim("C");
  std::vector<float> b = c.f("b"), dout = c.f("dout");
  FOR_EACH_PATH(path) {
    Guarded out(size_t(N) * C), db(C);
    load_into(c.f("out0"), out);
    if (path == Path::Ref) bias_forward_ref<float>(out.data(), b.data(), N, C);
    else bias_forward(out.data(), b.data(), N, C);
    EXPECT_TRUE(all_close(out.vec(), c.f("out"), 0, 0, "out"));  // one correctly rounded add: exact
    if (path == Path::Ref) bias_backward_ref<float>(db.data(), dout.data(), N, C);
    else bias_backward(db.data(), dout.data(), N, C);
    EXPECT_TRUE(close_sum(db.data(), c.f("db"), N, "db"));  // sums over N
    if (path == Path::Ref) bias_backward_ref<float>(db.data(), dout.data(), N, C);
    else bias_backward(db.data(), dout.data(), N, C);
    EXPECT_TRUE(close_sum(db.data(), scaled(c.f("db"), 2), N, "db after two backward calls"));
    for (auto* g : {&out, &db}) EXPECT_TRUE(g->intact("bias buffers"));
  }
}

ORACLE_SUITE(OracleDropout, "p0", "p01", "p05_bigseed", "p09", "p_boundary") {
  OracleCase c("dropout_" + GetParam());
  size_t n = size_t(c.dim("n"));
  float p = c.f32("p");
  uint64_t seed = c.u64("seed");
  std::vector<float> inp = c.f("inp"), dout = c.f("dout"), u = c.f("uniform");
  // The mask is a pure integer function: bit-exact.
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ(dropout_uniform(seed, i), u[i]) << "dropout_uniform(" << seed << ", " << i << ")";
  }
  // Kept values are x / (1 - p): our scale 1/(1-p) and the product are two roundings
  // against torch's one: 2 eps relative. Dropped values must be exactly 0.
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dinp(n, kNaN), io(n);
    if (path == Path::Ref) dropout_forward_ref<float>(out.data(), inp.data(), n, p, seed);
    else dropout_forward(out.data(), inp.data(), n, p, seed);
    EXPECT_TRUE(all_close(out.vec(), c.f("out"), 0, 2 * kEps, "out"));
    if (path == Path::Ref) dropout_backward_ref<float>(dinp.data(), dout.data(), n, p, seed);
    else dropout_backward(dinp.data(), dout.data(), n, p, seed);
    EXPECT_TRUE(all_close(dinp.vec(), c.f("dinp"), 0, 2 * kEps, "dinp"));
    load_into(dout, io);  // dinp may alias dout
    if (path == Path::Ref) dropout_backward_ref<float>(io.data(), io.data(), n, p, seed);
    else dropout_backward(io.data(), io.data(), n, p, seed);
    EXPECT_TRUE(all_close(io.vec(), c.f("dinp"), 0, 2 * kEps, "dinp in place"));
    for (auto* g : {&out, &dinp, &io}) EXPECT_TRUE(g->intact("dropout buffers"));
  }
}

// ================================================================ embedding

ORACLE_SUITE(OracleEmbedding, "small", "nopos", "large") {
  OracleCase c("embedding_" + GetParam());
  int B = c.dim("B"), T = c.dim("T"), C = c.dim("C"), V = c.dim("V"), maxT = c.dim("maxT");
  bool pos = c.has("wpe");
  std::vector<int32_t> tokens = c.i32("tokens");
  std::vector<float> wte = c.f("wte"), dout = c.f("dout");
  std::vector<float> wpe = pos ? c.f("wpe") : std::vector<float>();
  const float* wpe_p = pos ? wpe.data() : nullptr;
  // dwte rows gather up to B*T dout rows (repeated tokens); dwpe rows sum over B.
  std::vector<float> w_dwte = c.f("dwte"), w_dwpe = pos ? c.f("dwpe") : std::vector<float>();
  FOR_EACH_PATH(path) {
    Guarded out(size_t(B) * T * C, kNaN), dwte(size_t(V) * C), dwpe(size_t(std::max(maxT, 1)) * C);
    if (path == Path::Ref) embedding_forward_ref<float>(out.data(), tokens.data(), wte.data(), wpe_p, B, T, C);
    else embedding_forward(out.data(), tokens.data(), wte.data(), wpe_p, B, T, C);
    EXPECT_TRUE(all_close(out.vec(), c.f("out"), 0, 0, "out"));  // a copy or one correctly rounded add: exact
    float* dwpe_p = pos ? dwpe.data() : nullptr;
    for (int round = 1; round <= 2; round++) {  // parameter gradients accumulate
      if (path == Path::Ref) embedding_backward_ref<float>(dwte.data(), dwpe_p, dout.data(), tokens.data(), B, T, C);
      else embedding_backward(dwte.data(), dwpe_p, dout.data(), tokens.data(), B, T, C);
      std::string r = round == 1 ? "" : " after two backward calls";
      EXPECT_TRUE(close_sum(dwte.data(), scaled(w_dwte, float(round)), double(B) * T, "dwte" + r));
      if (pos) {
        EXPECT_TRUE(close_sum(dwpe.data(), scaled(w_dwpe, float(round)), B, "dwpe" + r));
      }
    }
    for (auto* g : {&out, &dwte, &dwpe}) EXPECT_TRUE(g->intact("embedding buffers"));
  }
}

// ================================================================ cross-entropy

ORACLE_SUITE(OracleCrossEntropy, "small", "large", "extreme") {
  OracleCase c("crossentropy_" + GetParam());
  int N = c.dim("N"), V = c.dim("V");
  std::vector<float> logits = c.f("logits"), dlosses = c.f("dlosses"), w_lse = c.f("lse");
  std::vector<float> w_losses = c.f("losses"), w_dlogits = c.f("dlogits");
  std::vector<int32_t> targets = c.i32("targets");
  // lse = m + log(sum exp(x - m)): the sum's relative error (~eps sqrt(V)) becomes an
  // absolute error of the log, and the result is rounded at its own size: per row,
  // 4 eps (|lse| + sqrt(V)). The loss lse - x[t] inherits the same absolute error.
  // Ignored rows: loss exactly 0, lse unspecified.
  std::vector<double> tol_row(N), tol_lse(N);
  for (int n = 0; n < N; n++) {
    tol_row[n] = 4 * kEps * (std::fabs(w_lse[n]) + std::sqrt(double(V)));
    tol_lse[n] = targets[n] < 0 ? INFINITY : tol_row[n];
  }
  // dlogits = (p - onehot) dl, p = exp(x - lse): p's relative error is the absolute
  // error of x - lse (4 eps (|x| + |lse| + sqrt V)), plus a few roundings of the product.
  std::vector<double> tol_d(size_t(N) * V);
  for (int n = 0; n < N; n++)
    for (int v = 0; v < V; v++) {
      size_t i = size_t(n) * V + v;
      tol_d[i] = targets[n] < 0 ? 0.0
                                : 4 * kEps * (std::fabs(dlosses[n]) +
                                              std::fabs(w_dlogits[i]) *
                                                  (std::fabs(logits[i]) + std::fabs(w_lse[n]) + std::sqrt(double(V))));
    }
  FOR_EACH_PATH(path) {
    Guarded losses(N, kNaN), lse(N, kNaN), dlogits(size_t(N) * V, kNaN), io(size_t(N) * V);
    if (path == Path::Ref)
      crossentropy_forward_ref<float>(losses.data(), lse.data(), logits.data(), targets.data(), N, V);
    else
      crossentropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V);
    EXPECT_TRUE(close_each(losses.data(), w_losses, tol_row, "losses"));
    EXPECT_TRUE(close_each(lse.data(), w_lse, tol_lse, "lse"));
    auto bwd = [&](float* d, const float* x) {
      if (path == Path::Ref)
        crossentropy_backward_ref<float>(d, dlosses.data(), x, lse.data(), targets.data(), N, V);
      else
        crossentropy_backward(d, dlosses.data(), x, lse.data(), targets.data(), N, V);
    };
    bwd(dlogits.data(), logits.data());
    EXPECT_TRUE(close_each(dlogits.data(), w_dlogits, tol_d, "dlogits"));
    load_into(logits, io);  // dlogits may alias logits
    bwd(io.data(), io.data());
    EXPECT_TRUE(close_each(io.data(), w_dlogits, tol_d, "dlogits in place"));
    for (auto* g : {&losses, &lse, &dlogits, &io}) EXPECT_TRUE(g->intact("crossentropy buffers"));
  }
}

// ================================================================ rope

ORACLE_SUITE(OracleRope, "small", "offset", "llama3") {
  OracleCase c("rope_" + GetParam());
  int B = c.dim("B"), T = c.dim("T"), H = c.dim("H"), D = c.dim("D"), pos0 = c.dim("pos0");
  float theta = c.f32("theta");
  std::vector<float> inp = c.f("inp"), dout = c.f("dout");
  size_t n = inp.size();
  // Each output is x_i cos - x_j sin (j the pair of i): cos and sin rounded to fp32,
  // two products and a sum: a few ulp of |x_i| + |x_j| (absolute: the terms may cancel).
  auto pair_tol = [&](const std::vector<float>& x) {
    std::vector<double> tol(n);
    for (size_t i = 0; i < n; i++) {
      size_t d = i % D, j = d < size_t(D / 2) ? i + D / 2 : i - D / 2;
      tol[i] = 4 * kEps * (std::fabs(x[i]) + std::fabs(x[j]));
    }
    return tol;
  };
  std::vector<double> tol_f = pair_tol(inp), tol_b = pair_tol(dout);
  FOR_EACH_PATH(path) {
    Guarded out(n, kNaN), dinp(n, kNaN), io(n);
    if (path == Path::Ref) rope_forward_ref<float>(out.data(), inp.data(), B, T, H, D, theta, pos0);
    else rope_forward(out.data(), inp.data(), B, T, H, D, theta, pos0);
    EXPECT_TRUE(close_each(out.data(), c.f("out"), tol_f, "out"));
    load_into(inp, io);  // out may alias inp
    if (path == Path::Ref) rope_forward_ref<float>(io.data(), io.data(), B, T, H, D, theta, pos0);
    else rope_forward(io.data(), io.data(), B, T, H, D, theta, pos0);
    EXPECT_TRUE(close_each(io.data(), c.f("out"), tol_f, "out in place"));
    if (path == Path::Ref) rope_backward_ref<float>(dinp.data(), dout.data(), B, T, H, D, theta, pos0);
    else rope_backward(dinp.data(), dout.data(), B, T, H, D, theta, pos0);
    EXPECT_TRUE(close_each(dinp.data(), c.f("dinp"), tol_b, "dinp"));
    load_into(dout, io);
    if (path == Path::Ref) rope_backward_ref<float>(io.data(), io.data(), B, T, H, D, theta, pos0);
    else rope_backward(io.data(), io.data(), B, T, H, D, theta, pos0);
    EXPECT_TRUE(close_each(io.data(), c.f("dinp"), tol_b, "dinp in place"));
    for (auto* g : {&out, &dinp, &io}) EXPECT_TRUE(g->intact("rope buffers"));
  }
}

// ================================================================ attention

ORACLE_SUITE(OracleAttention, "mha", "gqa", "mqa", "large") {
  OracleCase c("attention_" + GetParam());
  int B = c.dim("B"), T = c.dim("T"), H = c.dim("H"), Hkv = c.dim("Hkv"), D = c.dim("D");
  std::vector<float> q = c.f("q"), k = c.f("k"), v = c.f("v"), dout = c.f("dout");
  // Scores are sums over D, softmax rows sums over T, outputs sums over T (and over
  // the H/Hkv query heads sharing a kv head for dk, dv): errors ~ eps (sqrt D + sqrt(T H/Hkv))
  // times the size of the terms summed, not of the result: softmax averaging shrinks
  // out, and the softmax backward dS = P (dP - rowsum(P dP)) cancels on peaked rows,
  // leaving an absolute error ~ eps |P| |dP|. So each tolerance is absolute, scaled by
  // the typical term: |V| for out, 1 for probabilities, |dO||V||K| for dQ (dP ~ sqrt(D)
  // |dO||V| times the 1/sqrt(D) scale), |dO||V||Q| for dK, |dO| for dV.
  double walk = std::sqrt(double(D)) + std::sqrt(double(T) * H / Hkv);
  auto close_att = [&](const float* got, const std::vector<float>& want, double term, const std::string& what) {
    return all_close(got, want.data(), want.size(), 4 * kEps * walk * term, 2 * kEps, what);
  };
  FOR_EACH_PATH(path) {
    Guarded out(size_t(B) * T * H * D, kNaN), att(size_t(B) * H * T * T, kNaN);
    Guarded dq(q.size(), kNaN), dk(k.size(), kNaN), dv(v.size(), kNaN);
    if (path == Path::Ref)
      attention_forward_ref<float>(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
    else
      attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
    EXPECT_TRUE(close_att(out.data(), c.f("out"), rms(v), "out"));
    EXPECT_TRUE(close_att(att.data(), c.f("att"), 1.0, "att (zeros above the diagonal)"));
    if (path == Path::Ref)
      attention_backward_ref<float>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                    att.data(), B, T, H, Hkv, D);
    else
      attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), att.data(), B,
                         T, H, Hkv, D);
    std::vector<float> w_dq = c.f("dq"), w_dk = c.f("dk"), w_dv = c.f("dv");
    EXPECT_TRUE(close_att(dq.data(), w_dq, rms(dout) * rms(v) * rms(k), "dq"));
    EXPECT_TRUE(close_att(dk.data(), w_dk, rms(dout) * rms(v) * rms(q), "dk"));
    EXPECT_TRUE(close_att(dv.data(), w_dv, rms(dout), "dv"));
    for (auto* g : {&out, &att, &dq, &dk, &dv}) EXPECT_TRUE(g->intact("attention buffers"));
  }
}

// ================================================================ general attention, relative position bias

ORACLE_SUITE(OracleAttentionGeneral, "enc", "dec", "cross", "cross_bias", "scaled", "scaled_bias", "peaked",
             "large") {
  OracleCase c("attention_general_" + GetParam());
  int B = c.dim("B"), Tq = c.dim("Tq"), Tk = c.dim("Tk"), H = c.dim("H"), D = c.dim("D");
  float scale = c.f32("scale");
  bool causal = c.dim("causal"), has_bias = c.has("bias");
  std::vector<float> q = c.f("q"), k = c.f("k"), v = c.f("v"), dout = c.f("dout");
  std::vector<float> bias = has_bias ? c.f("bias") : std::vector<float>();
  const float* bp = has_bias ? bias.data() : nullptr;
  const size_t nb = size_t(H) * Tq * Tk;
  // As OracleAttention, with the scale and the bias free. A score is a sum over D terms
  // of size sc / sqrt(D), with sc = scale sqrt(D) rms(q) rms(k) + rms(bias) the typical
  // score (T5: ~2; the "peaked" case: ~9): its error is ~ eps sqrt(D) sc (partial sums
  // ~ sc, D roundings), and an error e in a score is a relative error e in its
  // probability; the sums over Tk keys add eps sqrt(Tk). So the walk is sqrt(Tk) +
  // sqrt(D) max(1, sc) (at sc = 1 OracleAttention's), and each tolerance is 4 eps walk
  // times the typical term of its sum: |V| for out, 1 for P, dP ~ sqrt(D) |dO||V| for
  // dscores, scale dP |K| (|Q|) for dq (dk), |dO| for dv. Measured: at most 0.15 of it.
  const double sc = double(scale) * std::sqrt(double(D)) * rms(q) * rms(k) + (has_bias ? rms(bias) : 0.0);
  const double walk = std::sqrt(double(Tk)) + std::sqrt(double(D)) * std::max(1.0, sc);
  auto close_att = [&](const float* got, const std::vector<float>& want, double term, const std::string& what) {
    return all_close(got, want.data(), want.size(), 4 * kEps * walk * term, 2 * kEps, what);
  };
  const double dp = std::sqrt(double(D)) * rms(dout) * rms(v);
  FOR_EACH_PATH(path) {
    Guarded out(q.size(), kNaN), att(size_t(B) * nb, kNaN);
    Guarded dq(q.size(), kNaN), dk(k.size(), kNaN), dv(v.size(), kNaN), ds(size_t(B) * nb, kNaN);
    if (path == Path::Ref)
      attention_general_forward_ref<float>(out.data(), att.data(), q.data(), k.data(), v.data(), bp, B, Tq, Tk, H, D,
                                           double(scale), causal);
    else
      attention_general_forward(out.data(), att.data(), q.data(), k.data(), v.data(), bp, B, Tq, Tk, H, D, scale,
                                causal);
    EXPECT_TRUE(close_att(out.data(), c.f("out"), rms(v), "out"));
    EXPECT_TRUE(close_att(att.data(), c.f("att"), 1.0, causal ? "att (zeros above the diagonal)" : "att"));
    if (path == Path::Ref)
      attention_general_backward_ref<float>(dq.data(), dk.data(), dv.data(), ds.data(), dout.data(), q.data(),
                                            k.data(), v.data(), att.data(), B, Tq, Tk, H, D, double(scale), causal);
    else
      attention_general_backward(dq.data(), dk.data(), dv.data(), ds.data(), dout.data(), q.data(), k.data(),
                                 v.data(), att.data(), B, Tq, Tk, H, D, scale, causal);
    EXPECT_TRUE(close_att(dq.data(), c.f("dq"), double(scale) * dp * rms(k), "dq"));
    EXPECT_TRUE(close_att(dk.data(), c.f("dk"), double(scale) * dp * rms(q), "dk"));
    EXPECT_TRUE(close_att(dv.data(), c.f("dv"), rms(dout), "dv"));
    EXPECT_TRUE(close_att(ds.data(), c.f("dscores"), dp, "dscores (0 where masked)"));
    if (has_bias) {
      // torch's gradient of the shared bias: our dscores summed over the batch (in
      // double here): B errors of dscores' size add up.
      std::vector<float> dbias(nb);
      for (size_t x = 0; x < nb; x++) {
        double t = 0;
        for (int b = 0; b < B; b++) t += ds.data()[b * nb + x];
        dbias[x] = float(t);
      }
      EXPECT_TRUE(close_att(dbias.data(), c.f("dbias"), dp * std::sqrt(double(B)), "dbias = sum_b dscores"));
    }
    for (auto* g : {&out, &att, &dq, &dk, &dv, &ds}) EXPECT_TRUE(g->intact("attention_general buffers"));
  }
}

// The buckets are integers: equal to HF's for every rel in [-300, 300], in every
// configuration, both directions. Where the file records that float64 arithmetic
// disagrees with HF's float32 (the (20, 160) and (10, 160) tables), the same formula
// in double is computed here too and must disagree exactly there: the float32 order
// of operations is what makes ours match.
int bucket_in_double(int rel, bool bidirectional, int nb, int md) {
  int base = 0, n;
  if (bidirectional) {
    nb /= 2;
    base = rel > 0 ? nb : 0;
    n = std::abs(rel);
  } else {
    n = std::max(-rel, 0);
  }
  const int me = nb / 2;
  if (n < me) return base + n;
  int large = me + int(std::log(double(n) / me) / std::log(double(md) / me) * (nb - me));
  return base + std::min(large, nb - 1);
}

TEST(OracleRelposBuckets, MatchTorchExactly) {
  OracleCase c("relpos_buckets");
  std::vector<int32_t> rel = c.i32("rel");
  ASSERT_EQ(rel.size(), 601u);
  int configs = 0, witnessed = 0;
  for (auto [nb, md] : {std::pair{32, 128}, std::pair{8, 20}, std::pair{20, 160}, std::pair{10, 160}})
    for (bool bi : {true, false}) {
      std::string key = std::to_string(nb) + "_" + std::to_string(md) + (bi ? "_bi" : "_causal");
      std::vector<int32_t> want = c.i32("buckets_" + key);
      ASSERT_EQ(want.size(), rel.size()) << key;
      int bad = 0, f64_bad = 0;
      std::string first;
      for (size_t x = 0; x < rel.size(); x++) {
        int got = relpos_bucket(rel[x], bi, nb, md);
        if (got != want[x] && bad++ < 5)
          first += " rel " + std::to_string(rel[x]) + ": " + std::to_string(got) + " vs " + std::to_string(want[x]);
        f64_bad += bucket_in_double(rel[x], bi, nb, md) != want[x];
      }
      EXPECT_EQ(bad, 0) << key << ":" << first;
      EXPECT_EQ(f64_bad, c.dim("f64_mismatches_" + key)) << key << ": the float64 formula's disagreements";
      configs++;
      witnessed += f64_bad > 0;
    }
  EXPECT_EQ(configs, 8);
  EXPECT_GE(witnessed, 2) << "the cases where float64 arithmetic would give other buckets";
}

ORACLE_SUITE(OracleRelposBias, "enc", "dec", "dec_cached", "long", "small_buckets") {
  OracleCase c("relpos_bias_" + GetParam());
  int B = c.dim("B"), Tq = c.dim("Tq"), Tk = c.dim("Tk"), H = c.dim("H"), nb = c.dim("num_buckets"),
      md = c.dim("max_distance"), q0 = c.dim("q0");
  bool bi = c.dim("bidirectional");
  std::vector<float> table = c.f("table"), dscores = c.f("dscores"), w_dtable = c.f("dtable");
  FOR_EACH_PATH(path) {
    Guarded bias(size_t(H) * Tq * Tk, kNaN), dtable(table.size());
    if (path == Path::Ref) relpos_bias_forward_ref<float>(bias.data(), table.data(), Tq, Tk, H, nb, md, bi, q0);
    else relpos_bias_forward(bias.data(), table.data(), Tq, Tk, H, nb, md, bi, q0);
    EXPECT_TRUE(all_close(bias.vec(), c.f("bias"), 0, 0, "bias (a lookup: exact)"));
    auto bwd = [&] {
      if (path == Path::Ref)
        relpos_bias_backward_ref<float>(dtable.data(), dscores.data(), B, Tq, Tk, H, nb, md, bi, q0);
      else
        relpos_bias_backward(dtable.data(), dscores.data(), B, Tq, Tk, H, nb, md, bi, q0);
    };
    // Both paths sum in double and round once, as torch (float64) does: an ulp apart,
    // 2 eps relative; the absolute 1e-9 covers the order of up to B Tq Tk = 51200 double
    // additions of O(1) terms (1e-16 each). After the second call (dtable accumulates)
    // two roundings: still within 2 eps of twice torch's.
    bwd();
    EXPECT_TRUE(all_close(dtable.vec(), w_dtable, 1e-9, 2 * kEps, "dtable"));
    bwd();
    EXPECT_TRUE(all_close(dtable.vec(), scaled(w_dtable, 2), 1e-9, 2 * kEps, "dtable after two backward calls"));
    for (auto* g : {&bias, &dtable}) EXPECT_TRUE(g->intact("relpos buffers"));
  }
}

// ================================================================ optimizer, clipping

ORACLE_SUITE(OracleAdamW, "default", "llm", "tinygrad") {
  OracleCase c("adamw_" + GetParam());
  size_t n = size_t(c.dim("n"));
  int steps = c.dim("steps");
  AdamWParams hp;
  hp.lr = c.f32("lr");
  hp.beta1 = c.f32("beta1");
  hp.beta2 = c.f32("beta2");
  hp.eps = c.f32("eps");
  hp.weight_decay = c.f32("weight_decay");
  std::vector<float> p0 = c.f("params0");
  FOR_EACH_PATH(path) {
    Guarded p(n), m(n), v(n);
    load_into(p0, p);
    for (int t = 1; t <= steps; t++) {
      std::vector<float> g = c.f("grads" + std::to_string(t));
      if (path == Path::Ref) adamw_update_ref<float>(p.data(), m.data(), v.data(), g.data(), n, hp, t);
      else adamw_update(p.data(), m.data(), v.data(), g.data(), n, hp, t);
      // Per step: the decay and the update are rounded at |p| (2 eps relative), the
      // update lr * mhat / (sqrt(vhat) + eps) is O(lr) with a few eps relative error;
      // errors add up over steps.
      std::string what = "params after step " + std::to_string(t);
      EXPECT_TRUE(all_close(p.vec(), c.f("params" + std::to_string(t)), 8 * t * kEps * hp.lr, 2 * t * kEps, what));
    }
    // m = b1 m + (1 - b1) g can cancel: absolute error relative to the gradients' size.
    // v sums positive terms: relative error only.
    std::vector<float> glast = c.f("grads" + std::to_string(steps));
    EXPECT_TRUE(all_close(m.vec(), c.f("m"), 4 * steps * kEps * rms(glast), 4 * steps * kEps, "m"));
    EXPECT_TRUE(all_close(v.vec(), c.f("v"), 0, 4 * steps * kEps, "v"));
    for (auto* g : {&p, &m, &v}) EXPECT_TRUE(g->intact("adamw buffers"));
  }
}

ORACLE_SUITE(OracleClip, "clips", "noclip", "small") {
  OracleCase c("clip_" + GetParam());
  size_t n = size_t(c.dim("n"));
  double max_norm = c.real("max_norm"), want_norm = c.real("norm");
  std::vector<float> g = c.f("g");
  FOR_EACH_PATH(path) {
    // Both sum float squares in double (n <= 1e4 terms): only the order differs, ~sqrt(n) 2^-53.
    double norm = path == Path::Ref ? grad_norm_ref<float>(g.data(), n) : grad_norm(g.data(), n);
    EXPECT_NEAR(norm, want_norm, 1e-12 * want_norm) << "grad_norm";
    Guarded gc(n);
    load_into(g, gc);
    double before = path == Path::Ref ? grad_clip_ref<float>(gc.data(), n, max_norm) : grad_clip(gc.data(), n, max_norm);
    EXPECT_NEAR(before, want_norm, 1e-12 * want_norm) << "grad_clip's returned norm";
    // Clipped: g * (max_norm / (norm + 1e-6)), the factor in double, one rounding to
    // fp32 each side (ours may round the factor to fp32 first): 2 eps relative.
    // Not clipped: untouched, exactly.
    double rtol = c.dim("clipped") ? 2 * kEps : 0.0;
    EXPECT_TRUE(all_close(gc.vec(), c.f("g_clipped"), 0, rtol, "clipped gradients"));
    EXPECT_TRUE(gc.intact("clip buffer"));
  }
}

}  // namespace
}  // namespace moe
