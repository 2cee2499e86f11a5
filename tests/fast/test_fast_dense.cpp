// Fast path vs reference: embedding, matmul (fp32, bf16), linear, bias, residual.
// Sizes sweep 1, 3, 7, 17, 65 and a few larger ones; outputs live in guarded
// buffers (an out-of-bounds write fails the test) and must be finite.
#include <cmath>

#include "ops/bias.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/residual.h"
#include "tensor/dtype.h"
#include "tensor/cpu.h"
#include "testutil.h"

namespace moe::test {
namespace {

// fp32 GEMM vs a double-accumulated reference: blocked accumulation in fp32 has
// error ~ sqrt(K) * eps32 * sum|a b|; with unit normals that is < 1e-5 * sqrt(K).
double gemm_tol(int K) { return 2e-6 * std::sqrt(double(K)) * 4; }

TEST(Fast, MatmulFp32) {
  for (int M : {1, 3, 17, 65})
    for (int N : {1, 7, 65})
      for (int K : {1, 3, 17, 130})
        for (int ta = 0; ta < 2; ta++)
          for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++) {
              auto A = randn<float>(M * K, 1), B = randn<float>(K * N, 2), C0 = randn<float>(M * N, 3);
              Guarded C(M * N);
              std::copy(C0.begin(), C0.end(), C.data());
              auto R = C0;
              matmul(C.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
              matmul_ref(R.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
              std::string what = "matmul M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                 " K=" + std::to_string(K) + " ta=" + std::to_string(ta) +
                                 " tb=" + std::to_string(tb) + " acc=" + std::to_string(acc);
              ASSERT_TRUE(C.intact(what));
              ASSERT_TRUE(all_finite(C.data(), C.size(), what));
              ASSERT_TRUE(all_close(C.vec(), R, gemm_tol(K), 1e-5, what));
            }
}

// Strided operands (a head's slice of a (T, H, D) tensor), also called from
// inside a parallel region the way attention calls it.
TEST(Fast, MatmulStridedInParallel) {
  const int T = 33, H = 3, D = 8;
  auto q = randn<float>(T * H * D, 1), k = randn<float>(T * H * D, 2);
  std::vector<float> fast(size_t(H) * T * T), ref(size_t(H) * T * T);
#pragma omp parallel for
  for (int h = 0; h < H; h++)
    matmul_ld(fast.data() + size_t(h) * T * T, T, q.data() + h * D, H * D, k.data() + h * D, H * D, T, T, D, false,
              true, false);
  for (int h = 0; h < H; h++)
    matmul_ld_ref(ref.data() + size_t(h) * T * T, T, q.data() + h * D, H * D, k.data() + h * D, H * D, T, T, D, false,
                  true, false);
  EXPECT_TRUE(all_close(fast, ref, gemm_tol(D), 1e-5, "strided matmul"));
  // transA with accumulate, strided output
  Guarded C(T * H * D, 1.0f);
  std::vector<float> R(T * H * D, 1.0f);
  matmul_ld(C.data() + D, H * D, fast.data(), T, k.data(), H * D, T, D, T, true, false, true);
  matmul_ld_ref(R.data() + D, H * D, fast.data(), T, k.data(), H * D, T, D, T, true, false, true);
  ASSERT_TRUE(C.intact("strided C"));
  EXPECT_TRUE(all_close(C.vec(), R, gemm_tol(T) * 10, 1e-5, "strided transA accumulate (untouched columns stay 1)"));
}

// One shape first inside a parallel region (a primitive sized for the one
// thread each GEMM gets there), then outside with every thread, then inside
// again: each context has its own primitive (issue 21, item 1: a primitive made
// in one context and run in the other is outside oneDNN's contract), and every
// result matches the reference in guarded buffers.
TEST(Fast, MatmulPrimitivePerThreadingContext) {
  const int M = 37, N = 29, K = 45;  // a shape no other test uses
  auto A = randn<float>(M * K, 4), B = randn<float>(K * N, 5);
  std::vector<float> R(size_t(M) * N);
  matmul_ref(R.data(), A.data(), B.data(), M, N, K, false, false, false);
  const size_t before = matmul_primitives_cached();
  auto inside = [&](const char* what) {
    std::vector<Guarded> out;
    for (int i = 0; i < 4; i++) out.emplace_back(M * N);
#pragma omp parallel for num_threads(2)
    for (int i = 0; i < 4; i++) matmul(out[i].data(), A.data(), B.data(), M, N, K, false, false, false);
    for (auto& C : out) {
      ASSERT_TRUE(C.intact(what));
      EXPECT_TRUE(all_close(C.vec(), R, gemm_tol(K), 1e-5, what));
    }
  };
  inside("first inside a parallel region");
  Guarded C(M * N);
  matmul(C.data(), A.data(), B.data(), M, N, K, false, false, false);
  ASSERT_TRUE(C.intact("outside"));
  EXPECT_TRUE(all_close(C.vec(), R, gemm_tol(K), 1e-5, "then outside"));
  inside("inside again");
  EXPECT_EQ(matmul_primitives_cached(), before + 2) << "one primitive inside a parallel region, one outside";
}

TEST(Fast, MatmulBf16) {
  for (int M : {1, 17, 128})
    for (int N : {3, 64})
      for (int K : {5, 256})
        for (int ta = 0; ta < 2; ta++)
          for (int tb = 0; tb < 2; tb++) {
            auto A = randn<float>(M * K, 1), B = randn<float>(K * N, 2);
            std::vector<bf16> Ab(A.size()), Bb(B.size());
            f32_to_bf16(Ab.data(), A.data(), A.size());
            f32_to_bf16(Bb.data(), B.data(), B.size());
            // The reference multiplies the same bf16-rounded values in double, so the
            // only difference left is fp32 accumulation order (as gemm_tol).
            std::vector<float> Ar(A.size()), Br(B.size());
            bf16_to_f32(Ar.data(), Ab.data(), A.size());
            bf16_to_f32(Br.data(), Bb.data(), B.size());
            Guarded C(M * N);
            std::vector<float> R(M * N);
            matmul_bf16(C.data(), Ab.data(), Bb.data(), M, N, K, ta, tb, false);
            matmul_ref(R.data(), Ar.data(), Br.data(), M, N, K, ta, tb, false);
            std::string what = "matmul_bf16 M=" + std::to_string(M) + " K=" + std::to_string(K);
            ASSERT_TRUE(C.intact(what));
            ASSERT_TRUE(all_close(C.vec(), R, gemm_tol(K), 1e-5, what));
          }
}

// The two bf16 GEMM routes (tensor/cpu.h) on the same inputs: oneDNN's bf16 matmul and
// the operands widened to f32. Both sum the same exact products in f32, so they differ by
// summation order only: gemm_tol, as each route against the reference. Native needs
// AVX-512; on a lower tier (or under ONEDNN_MAX_CPU_ISA=AVX2) only the widened route runs
// and MatmulBf16 above checks it.
TEST(Fast, MatmulBf16RoutesAgree) {
  if (cpu_tier() < IsaTier::AVX512) GTEST_SKIP() << "no oneDNN bf16 matmul on tier " << isa_tier_name(cpu_tier());
  for (int M : {1, 17, 128, 200})
    for (int N : {3, 64})
      for (int K : {5, 256, 300})
        for (int ta = 0; ta < 2; ta++)
          for (int tb = 0; tb < 2; tb++)
            for (bool acc : {false, true}) {
              auto A = randn<float>(M * K, 1), B = randn<float>(K * N, 2), C0 = randn<float>(M * N, 3);
              std::vector<bf16> Ab(A.size()), Bb(B.size());
              f32_to_bf16(Ab.data(), A.data(), A.size());
              f32_to_bf16(Bb.data(), B.data(), B.size());
              std::vector<float> native = C0, widen = C0;
              matmul_bf16_native(native.data(), Ab.data(), Bb.data(), M, N, K, ta, tb, acc);
              matmul_bf16_widen(widen.data(), Ab.data(), Bb.data(), M, N, K, ta, tb, acc);
              const std::string what = "bf16 routes M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                       " K=" + std::to_string(K) + " tA=" + std::to_string(ta) +
                                       " tB=" + std::to_string(tb) + " acc=" + std::to_string(acc);
              ASSERT_TRUE(all_close(widen, native, gemm_tol(K), 1e-5, what));
            }
}

// Below AVX-512, oneDNN 2.6 cannot make a bf16 matmul: asked for one anyway, moe says so
// in one line naming the op, dtypes, shape, the tier and the remedy, not oneDNN's words alone.
TEST(Fast, MatmulBf16NativeRefusedBelowAvx512) {
  if (cpu_tier() >= IsaTier::AVX512) GTEST_SKIP() << "oneDNN has a bf16 matmul on tier " << isa_tier_name(cpu_tier());
  EXPECT_EQ(bf16_gemm_route(), Bf16Gemm::Widen);
  std::vector<bf16> A(6 * 5), B(5 * 3);
  std::vector<float> C(6 * 3);
  try {
    matmul_bf16_native(C.data(), A.data(), B.data(), 6, 3, 5, false, true, false);
    FAIL() << "a bf16 matmul was made on tier " << isa_tier_name(cpu_tier());
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    const std::string isa = std::string("isa ") + isa_tier_name(cpu_tier());
    for (const std::string& needle : {std::string("bf16 matmul"), std::string("6x5 . 5x3^T"), isa,
                                      std::string("--compute f32")})
      EXPECT_NE(m.find(needle), std::string::npos) << needle << " not in: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  // and the route every caller takes computes it (MatmulBf16 checks the values)
  matmul_bf16(C.data(), A.data(), B.data(), 6, 3, 5, false, true, false);
}

TEST(Fast, LinearFp32AndBf16) {
  for (int N : {1, 7, 65})
    for (int IC : {3, 17})
      for (int OC : {1, 65})
        for (bool bias : {true, false}) {
          auto x = randn<float>(N * IC, 1), W = randn<float>(OC * IC, 2), b = randn<float>(OC, 3),
               g = randn<float>(N * OC, 4);
          const float* bp = bias ? b.data() : nullptr;
          Guarded out(N * OC), dx(N * IC), dW(OC * IC, 0.5f), db(OC, 0.25f);
          std::vector<float> rout(N * OC), rdx(N * IC), rdW(OC * IC, 0.5f), rdb(OC, 0.25f);
          linear_forward(out.data(), x.data(), W.data(), bp, N, IC, OC);
          linear_backward(dx.data(), dW.data(), bias ? db.data() : nullptr, g.data(), x.data(), W.data(), N, IC, OC);
          linear_forward_ref(rout.data(), x.data(), W.data(), bp, N, IC, OC);
          linear_backward_ref(rdx.data(), rdW.data(), bias ? rdb.data() : nullptr, g.data(), x.data(), W.data(), N,
                              IC, OC);
          for (auto* g : {&out, &dx, &dW, &db}) ASSERT_TRUE(g->intact("linear"));
          EXPECT_TRUE(all_close(out.vec(), rout, gemm_tol(IC), 1e-5, "linear out"));
          EXPECT_TRUE(all_close(dx.vec(), rdx, gemm_tol(OC), 1e-5, "linear dinp"));
          EXPECT_TRUE(all_close(dW.vec(), rdW, gemm_tol(N), 1e-5, "linear dW (accumulated onto 0.5)"));
          EXPECT_TRUE(all_close(db.vec(), rdb, gemm_tol(N), 1e-5, "linear db (accumulated onto 0.25)"));

          // bf16 operands: compare with the reference on the rounded values.
          auto round = [](const std::vector<float>& v, std::vector<bf16>& h) {
            h.resize(v.size());
            f32_to_bf16(h.data(), v.data(), v.size());
            std::vector<float> r(v.size());
            bf16_to_f32(r.data(), h.data(), v.size());
            return r;
          };
          std::vector<bf16> xb, Wb, gb;
          auto xr = round(x, xb), Wr = round(W, Wb), gr = round(g, gb);
          Guarded bout(N * OC), bdx(N * IC), bdW(OC * IC), bdb(OC);
          std::vector<float> r2out(N * OC), r2dx(N * IC), r2dW(OC * IC), r2db(OC);
          linear_forward_bf16(bout.data(), xb.data(), Wb.data(), bp, N, IC, OC);
          linear_backward_bf16(bdx.data(), bdW.data(), bdb.data(), g.data(), gb.data(), xb.data(), Wb.data(), N, IC,
                               OC);
          linear_forward_ref(r2out.data(), xr.data(), Wr.data(), bp, N, IC, OC);
          linear_backward_ref(r2dx.data(), r2dW.data(), (float*)nullptr, gr.data(), xr.data(), Wr.data(), N, IC, OC);
          bias_backward_ref(r2db.data(), g.data(), N, OC);  // db sums the fp32 dout
          EXPECT_TRUE(all_close(bout.vec(), r2out, gemm_tol(IC), 1e-5, "linear bf16 out"));
          EXPECT_TRUE(all_close(bdx.vec(), r2dx, gemm_tol(OC), 1e-5, "linear bf16 dinp"));
          EXPECT_TRUE(all_close(bdW.vec(), r2dW, gemm_tol(N), 1e-5, "linear bf16 dW"));
          EXPECT_TRUE(all_close(bdb.vec(), r2db, gemm_tol(N), 1e-5, "linear bf16 db"));
        }
}

TEST(Fast, BiasAndResidual) {
  for (int N : {1, 3, 65})
    for (int C : {1, 7, 17, 130}) {
      auto x = randn<float>(N * C, 1), b = randn<float>(C, 2);
      Guarded out(N * C), db(C, 1.0f);
      std::copy(x.begin(), x.end(), out.data());
      auto r = x;
      std::vector<float> rdb(C, 1.0f);
      bias_forward(out.data(), b.data(), N, C);
      bias_forward_ref(r.data(), b.data(), N, C);
      bias_backward(db.data(), x.data(), N, C);
      bias_backward_ref(rdb.data(), x.data(), N, C);
      ASSERT_TRUE(out.intact("bias") && db.intact("bias db"));
      EXPECT_TRUE(all_close(out.vec(), r, 0, 0, "bias out: one add per element, exact"));
      // column sums of N values: fp32 vs double accumulation, ~N eps32.
      EXPECT_TRUE(all_close(db.vec(), rdb, 1e-6 * N, 1e-6, "bias db"));

      Guarded s(N * C), da(N * C, 1.0f), dbb(N * C, -1.0f);
      std::vector<float> rs(N * C), rda(N * C, 1.0f), rdbb(N * C, -1.0f);
      residual_forward(s.data(), x.data(), out.data(), size_t(N) * C);
      residual_forward_ref(rs.data(), x.data(), out.data(), size_t(N) * C);
      residual_backward(da.data(), dbb.data(), x.data(), size_t(N) * C);
      residual_backward_ref(rda.data(), rdbb.data(), x.data(), size_t(N) * C);
      ASSERT_TRUE(s.intact("residual") && da.intact("residual da") && dbb.intact("residual db"));
      EXPECT_TRUE(all_close(s.vec(), rs, 0, 0, "residual out: exact"));
      EXPECT_TRUE(all_close(da.vec(), rda, 0, 0, "residual da: exact"));
      EXPECT_TRUE(all_close(dbb.vec(), rdbb, 0, 0, "residual db: exact"));
    }
}

TEST(Fast, Embedding) {
  for (int T : {1, 7, 65})
    for (int C : {1, 17, 130})
      for (bool pos : {true, false}) {
        const int B = 3, V = 29;
        auto tok = randint(B * T, V, 5);
        auto wte = randn<float>(V * C, 1), wpe = randn<float>(T * C, 2), g = randn<float>(B * T * C, 3);
        const float* pe = pos ? wpe.data() : nullptr;
        Guarded out(B * T * C), dwte(V * C), dwpe(T * C);
        std::vector<float> rout(B * T * C), rdwte(V * C), rdwpe(T * C);
        embedding_forward(out.data(), tok.data(), wte.data(), pe, B, T, C);
        embedding_forward_ref(rout.data(), tok.data(), wte.data(), pe, B, T, C);
        embedding_backward(dwte.data(), pos ? dwpe.data() : nullptr, g.data(), tok.data(), B, T, C);
        embedding_backward_ref(rdwte.data(), pos ? rdwpe.data() : nullptr, g.data(), tok.data(), B, T, C);
        ASSERT_TRUE(out.intact("embedding") && dwte.intact("dwte") && dwpe.intact("dwpe"));
        EXPECT_TRUE(all_close(out.vec(), rout, 0, 0, "embedding out: one add, exact"));
        // Both add a token's rows in (b, t) order in fp32: identical.
        EXPECT_TRUE(all_close(dwte.vec(), rdwte, 0, 0, "embedding dwte"));
        EXPECT_TRUE(all_close(dwpe.vec(), rdwpe, 0, 0, "embedding dwpe"));
      }
}

}  // namespace
}  // namespace moe::test
