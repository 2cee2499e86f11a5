#include "perf/gemm_bench.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "ops/matmul.h"

namespace moe {

const std::vector<std::string>& gemm_shape_sets() {
  static const std::vector<std::string> sets{"small", "square", "mlp", "all"};
  return sets;
}

std::vector<GemmShape> gemm_shapes(const std::string& set) {
  std::vector<GemmShape> out;
  if (set == "small") {
    // ~0.3-0.7 ms a call on 2 cores: long enough to compare with the peak's 1 ms windows.
    out.push_back({"square_512", 512, 512, 512, false, false});
    out.push_back({"mlp_small_fwd", 512, 1024, 256, false, true});
    return out;
  }
  if (set == "square" || set == "all") {
    for (int n : {512, 1024, 2048}) out.push_back({"square_" + std::to_string(n), n, n, n, false, false});
  }
  if (set == "mlp" || set == "all") {
    // T = 2048 tokens through linear layers W (OC,IC) as torch.nn.Linear (ops/linear.h):
    //   forward  out (T,OC) = inp (T,IC) · W^T        M=T,  N=OC, K=IC, transB
    //   backward dinp (T,IC) = dout (T,OC) · W         M=T,  N=IC, K=OC
    //            dW (OC,IC) = dout^T (OC,T) · inp      M=OC, N=IC, K=T,  transA
    // up projection C=512 -> F=2048, down projection F=2048 -> C=512.
    const int T = 2048, C = 512, F = 2048;
    out.push_back({"mlp_up_nn", T, F, C, false, false});  // the same sizes, plain layout
    out.push_back({"mlp_up_fwd", T, F, C, false, true});
    out.push_back({"mlp_up_dinp", T, C, F, false, false});
    out.push_back({"mlp_up_dw", F, C, T, true, false});
    out.push_back({"mlp_down_fwd", T, C, F, false, true});
    out.push_back({"mlp_down_dinp", T, F, C, false, false});
    out.push_back({"mlp_down_dw", C, F, T, true, false});
  }
  if (out.empty()) throw std::invalid_argument("unknown GEMM shape set '" + set + "'");
  return out;
}

double GemmResult::gflops() const {
  return 2.0 * shape.M * shape.N * shape.K / best_s * 1e-9;
}
double GemmResult::gflops_median() const {
  return 2.0 * shape.M * shape.N * shape.K / median_s * 1e-9;
}

namespace {

// Uniform in [-1, 1): the values do not change the speed, only keep it honest
// (no zeros the hardware could shortcut, no denormals).
void fill_uniform(float* x, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = float(int64_t(s >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
  }
}

template <typename Call>
GemmResult time_calls(const GemmShape& shape, DType dtype, double min_seconds, Call call) {
  call();  // creates the primitive
  call();  // first run with the operands in cache
  std::vector<double> times;
  double total = 0;
  while (total < min_seconds || times.size() < 3) {
    double t0 = omp_get_wtime();
    call();
    double t = omp_get_wtime() - t0;
    times.push_back(t);
    total += t;
  }
  std::sort(times.begin(), times.end());
  GemmResult r{shape, dtype};
  r.reps = int(times.size());
  r.best_s = times.front();
  size_t n = times.size();
  r.median_s = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  return r;
}

}  // namespace

GemmResult gemm_bench(const GemmShape& s, DType dtype, double min_seconds) {
  const size_t a_n = size_t(s.M) * s.K, b_n = size_t(s.K) * s.N, c_n = size_t(s.M) * s.N;
  std::vector<float> A(a_n), B(b_n), C(c_n);
  fill_uniform(A.data(), a_n, 1);
  fill_uniform(B.data(), b_n, 2);
  if (dtype == DType::F32) {
    return time_calls(s, dtype, min_seconds, [&] {
      matmul(C.data(), A.data(), B.data(), s.M, s.N, s.K, s.transA, s.transB, false);
    });
  }
  std::vector<bf16> Ab(a_n), Bb(b_n);
  f32_to_bf16(Ab.data(), A.data(), a_n);
  f32_to_bf16(Bb.data(), B.data(), b_n);
  return time_calls(s, dtype, min_seconds, [&] {
    matmul_bf16(C.data(), Ab.data(), Bb.data(), s.M, s.N, s.K, s.transA, s.transB, false);
  });
}

}  // namespace moe
