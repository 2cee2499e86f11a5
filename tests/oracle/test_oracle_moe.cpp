// The MoE block against PyTorch. tests/oracle/moe_oracle.py (run by the ctest fixture
// oracle_generate) writes one safetensors file per case: inputs, torch's routing
// (choices, kept mask, combine weights), output, aux and z losses and every gradient
// of loss = sum(out * dout) + aux + z, computed in float64 on float32 inputs.
//
// Both our paths run on the same inputs: the reference (moe_forward_ref<float> /
// moe_backward_ref<float>) and the fast MoeBlock (fp32 experts; in the bf16 case also
// bf16 experts). The routing must match exactly; values within tolerances derived
// from the reductions involved, each with its reason. Conventions checked too: dx is
// assigned (its buffer starts as NaN), parameter gradients accumulate (a second
// backward gives twice torch's gradient), every buffer is written inside its bounds.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "moe/moe_layer.h"
#include "testutil.h"

namespace moe {
namespace {

using test::all_close;
using test::Guarded;
using test::rms;
using test::scaled;

constexpr double kEps = 1.1920928955078125e-7;  // float32 machine epsilon, 2^-23
constexpr double kBf16Half = 1.0 / 512;          // bf16 rounding: at most half an ulp, 2^-9 relative
const float kNaN = std::numeric_limits<float>::quiet_NaN();

class MoeCase {
 public:
  explicit MoeCase(const std::string& name) : f_(open(name)) {}
  std::vector<float> f(const std::string& n) const { return f_.read_f32(f_.at(n)); }
  std::vector<int32_t> i32(const std::string& n) const { return f_.read_i32(f_.at(n)); }
  bool has(const std::string& n) const { return f_.find(n) != nullptr; }
  const std::string& meta(const std::string& k) const {
    auto it = f_.metadata().find(k);
    if (it == f_.metadata().end()) throw std::runtime_error(f_.path() + ": no metadata key '" + k + "'");
    return it->second;
  }
  int dim(const std::string& k) const { return std::stoi(meta(k)); }
  double real(const std::string& k) const { return std::stod(meta(k)); }
  float f32(const std::string& k) const { return float(real(k)); }  // exact: metadata holds float32 values

 private:
  static SafeTensorsFile open(const std::string& name) {
    std::string path = std::string(MOE_TEST_BIN) + "/oracle_data/moe_" + name + ".safetensors";
    try {
      return SafeTensorsFile::open(path);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) +
                               " (written by tests/oracle/moe_oracle.py: the ctest fixture oracle_generate)");
    }
  }
  SafeTensorsFile f_;
};

::testing::AssertionResult close_rel(double got, double want, double rtol, const std::string& what) {
  if (std::fabs(got - want) <= rtol * std::fabs(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << got << " vs " << want << " (rel diff "
                                       << std::fabs(got - want) / std::fabs(want) << ", rtol " << rtol << ")";
}

enum class Path { Ref, Fast, FastBf16 };
const char* path_name(Path p) {
  return p == Path::Ref ? "reference path" : p == Path::Fast ? "fast path (fp32)" : "fast path (bf16 experts)";
}

// The parameters, in the order of the header's MoeWeights.
const char* const kParams[] = {"router", "w1", "b1", "w3", "w2", "b2"};

class OracleMoe : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Cases, OracleMoe,
                         ::testing::Values("switch_skew", "top1_cf125", "top2_renorm", "top2_dropless", "gelu_top1",
                                           "gelu_top2_skew", "all_experts", "bf16_top2", "t5_relu_top1",
                                           "t5_geglu_top2"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(OracleMoe, MatchesTorch) {
  MoeCase c(GetParam());
  const int N = c.dim("N");
  MoeSpec sp;
  sp.C = c.dim("C"), sp.F = c.dim("F"), sp.E = c.dim("E"), sp.K = c.dim("K");
  const std::string mlp = c.meta("mlp");
  sp.mlp = mlp == "gelu" ? MlpKind::Gelu : mlp == "relu" ? MlpKind::Relu : mlp == "geglu" ? MlpKind::GeGLU : MlpKind::SwiGLU;
  sp.bias = c.dim("bias");
  sp.capacity_factor = c.f32("cf");
  sp.renormalize = c.dim("renormalize");
  sp.aux_coef = c.f32("aux_coef"), sp.z_coef = c.f32("z_coef");
  const int C = sp.C, F = sp.F, E = sp.E, K = sp.K;
  const bool bf_case = c.dim("bf16");

  // The capacity rule itself: ceil(cf K N / E), or none.
  const int want_cap = c.dim("capacity");
  EXPECT_EQ(sp.capacity(N), want_cap < 0 ? INT_MAX : want_cap) << "MoeSpec::capacity";

  const std::vector<float> x = c.f("x"), dout = c.f("dout");
  std::vector<std::vector<float>> params(6);
  for (int i = 0; i < 6; i++)
    if (c.has(kParams[i])) params[i] = c.f(kParams[i]);
  auto ptr = [&](int i) { return params[i].empty() ? nullptr : params[i].data(); };
  MoeWeights<float> w{ptr(0), ptr(1), ptr(2), ptr(3), ptr(4), ptr(5)};
  ASSERT_TRUE(w.router && w.w1 && w.w2);
  ASSERT_EQ(moe_gated(sp.mlp), w.w3 != nullptr);
  ASSERT_EQ(sp.bias, w.b1 != nullptr && w.b2 != nullptr);
  // bf16 copies of the expert matrices (the case's values are exact bf16 values).
  std::vector<bf16> w1b, w3b, w2b;
  auto to_bf = [](const std::vector<float>& v) {
    std::vector<bf16> b(v.size());
    f32_to_bf16(b.data(), v.data(), v.size());
    return b;
  };
  MoeWeights<bf16> wbf;
  if (bf_case) {
    w1b = to_bf(params[1]), w2b = to_bf(params[4]);
    if (w.w3) w3b = to_bf(params[3]);
    wbf.w1 = w1b.data(), wbf.w2 = w2b.data(), wbf.w3 = w.w3 ? w3b.data() : nullptr;
  }

  const std::vector<int32_t> want_choice = c.i32("choice"), want_kept = c.i32("kept"), want_counts = c.i32("counts");
  const std::vector<float> want_weight = c.f("weight");
  const double want_aux = c.real("aux64"), want_z = c.real("z64");
  int want_dropped = 0;
  for (int32_t k : want_kept) want_dropped += k == 0;
  ASSERT_EQ(want_dropped, c.dim("dropped"));

  std::vector<Path> paths = {Path::Ref, Path::Fast};
  if (bf_case) paths.push_back(Path::FastBf16);
  for (Path path : paths) {
    SCOPED_TRACE(path_name(path));
    const bool bf = path == Path::FastBf16;
    Guarded out(size_t(N) * C, kNaN);
    MoeRouting rr;
    MoeLosses lr;
    MoeBlock blk(sp);
    if (path == Path::Ref) moe_forward_ref<float>(out.data(), rr, lr, x.data(), N, sp, w);
    else blk.forward(out.data(), x.data(), N, w, bf ? &wbf : nullptr);
    const MoeRouting& r = path == Path::Ref ? rr : blk.routing();
    const MoeLosses& l = path == Path::Ref ? lr : blk.losses();
    EXPECT_TRUE(out.intact("out"));

    // Routing: exact. The oracle's inputs have no near-ties (margins > 1e-4 in p).
    EXPECT_EQ(r.N, N);
    EXPECT_EQ(r.K, K);
    EXPECT_EQ(r.E, E);
    EXPECT_EQ(r.capacity, want_cap < 0 ? INT_MAX : want_cap) << "MoeRouting::capacity";
    EXPECT_EQ(r.choice, want_choice) << "choices (N,K)";
    ASSERT_EQ(r.kept.size(), want_kept.size());
    size_t kept_mismatch = 0, first_bad = 0;
    for (size_t i = 0; i < want_kept.size(); i++)
      if ((r.kept[i] != 0) != (want_kept[i] != 0) && kept_mismatch++ == 0) first_bad = i;
    EXPECT_EQ(kept_mismatch, 0u) << "kept mask differs in " << kept_mismatch << " pairs; first: token "
                                 << first_bad / K << " choice " << first_bad % K << " (torch kept="
                                 << want_kept[first_bad] << ")";
    EXPECT_EQ(r.dropped(), want_dropped);
    EXPECT_EQ(r.counts, want_counts) << "kept pairs per expert";
    // Combine weights: from fp32 probabilities (logits = sums of C fp32 products, abs
    // error ~eps sqrt(C) |logit|; exp a few ulp): 1e-5 relative is > 10x that.
    ASSERT_EQ(r.weight.size(), want_weight.size());
    {
      std::vector<float> wt(r.weight.begin(), r.weight.end());
      EXPECT_TRUE(all_close(wt, want_weight, 0.0, 1e-5, "combine weights"));
    }

    // Output. fp32: each value is two chained fp32 reductions (C terms, then F) times a
    // combine weight, summed over K choices: error ~eps sqrt(C + F) rms(out); 8x margin,
    // plus the weights' 1e-5 relative (above), plus 2 eps for the final roundings.
    // bf16 experts: against torch with the same GEMM operands rounded to bf16 (bf16.out;
    // unrounded torch differs by up to ~1% of rms(out) here). Left: the fp32 error, plus
    // an operand that torch (rounding float64) and we (rounding float32) round to
    // neighbouring bf16 values, about 1 in 2^15 of them: one term off by 2^-8 relative;
    // allowed as 2^-8 rms.
    const std::vector<float> want_out = c.f(bf ? "bf16.out" : "out");
    const double fp32_out_atol = 8 * kEps * std::sqrt(double(C + F)) * rms(want_out);
    const double out_atol = fp32_out_atol + (bf ? 2 * kBf16Half * rms(want_out) : 0.0);
    EXPECT_TRUE(all_close(out.data(), want_out.data(), want_out.size(), out_atol, 1e-5, "out"));

    // Losses: f is an exact count; P and lse average fp32 probabilities / logits whose
    // relative errors are ~eps sqrt(C) (a few 1e-7): 1e-5 relative. Not affected by bf16
    // (the router is fp32 always).
    EXPECT_TRUE(close_rel(l.aux, want_aux, 1e-5, "aux"));
    EXPECT_TRUE(close_rel(l.z, want_z, 1e-5, "z"));

    // Backward: dx assigned (NaN before), parameter grads accumulate (zero before; a
    // second backward must give twice torch's gradient).
    Guarded dx(size_t(N) * C, kNaN);
    std::vector<Guarded> gbuf;
    gbuf.reserve(6);
    for (int i = 0; i < 6; i++) gbuf.emplace_back(std::max<size_t>(params[i].size(), 1), 0.0f);
    auto gp = [&](int i) { return params[i].empty() ? nullptr : gbuf[i].data(); };
    MoeGrads<float> g{gp(0), gp(1), gp(2), gp(3), gp(4), gp(5)};
    auto bwd = [&] {
      if (path == Path::Ref) moe_backward_ref<float>(dx.data(), g, dout.data(), x.data(), N, sp, w, rr, 1.0);
      else blk.backward(dx.data(), g, dout.data(), x.data(), w, 1.0f);
    };
    // fp32: the longest chain is dx (sums over C for da, F for dx, E for the router) and
    // the weight grads (sums over up to N rows of products that themselves came from
    // C- or F-long sums): error ~eps sqrt(N + C + F) rms; 8x margin, 4 eps relative.
    // bf16 experts: against torch with the GEMM operands (a, dy, dh1, dh3) rounded to bf16
    // (bf16.grad.*; unrounded torch differs by up to 6% of rms here): the fp32 error
    // plus a rounding flip of one operand (see out), 2^-8 rms.
    auto grad_atol = [&](const std::vector<float>& want) {
      return 8 * kEps * std::sqrt(double(N + C + F)) * rms(want) + (bf ? 2 * kBf16Half * rms(want) : 0.0);
    };
    const std::string gpre = bf ? "bf16.grad." : "grad.";
    for (int rep = 1; rep <= 2; rep++) {
      SCOPED_TRACE(rep == 1 ? "first backward" : "second backward (parameter grads accumulate)");
      std::fill(dx.data(), dx.data() + dx.size(), kNaN);
      bwd();
      std::vector<float> want_dx = scaled(c.f(gpre + "x"), 1.0f);
      EXPECT_TRUE(all_close(dx.data(), want_dx.data(), want_dx.size(), grad_atol(want_dx), 4 * kEps, "grad.x"));
      EXPECT_TRUE(dx.intact("dx"));
      for (int i = 0; i < 6; i++) {
        if (params[i].empty()) continue;
        const std::string name = gpre + kParams[i];
        std::vector<float> want = scaled(c.f(name), float(rep));
        EXPECT_TRUE(all_close(gbuf[i].data(), want.data(), want.size(), grad_atol(want), 4 * kEps, name));
        EXPECT_TRUE(gbuf[i].intact(name));
      }
    }
  }
}

}  // namespace
}  // namespace moe
