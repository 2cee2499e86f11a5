// GEMM throughput of our matmul (src/ops/matmul.h) on the shapes training uses.
// `moe bench gemm` prints these against the measured peak (perf/peak.h).
#pragma once
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace moe {

// C (M,N) = op(A) (M,K) · op(B) (K,N), as matmul() takes it.
struct GemmShape {
  std::string name;  // what the shape is for, e.g. "mlp_up_fwd"
  int M, N, K;
  bool transA, transB;
};

// Named shape sets: "small" (two shapes, for tests), "square" (512, 1024, 2048),
// "mlp" (a 2048-token batch through a C=512, F=2048 MLP: forward and both backward
// GEMMs of the up and down projections), "all" (square + mlp).
const std::vector<std::string>& gemm_shape_sets();
// The shapes of a set; throws std::invalid_argument naming the set if unknown.
std::vector<GemmShape> gemm_shapes(const std::string& set);

struct GemmResult {
  GemmShape shape;
  DType dtype;          // F32: matmul; BF16: matmul_bf16 (fp32 accumulate and output)
  int reps = 0;         // timed calls
  double best_s = 0;    // fastest call, seconds
  double median_s = 0;  // median call, seconds
  double gflops() const;         // 2*M*N*K / best_s
  double gflops_median() const;  // 2*M*N*K / median_s
};

// Times one shape: random operands, two warm-up calls (the first creates the
// primitive), then calls until min_seconds have passed and at least 3 were made.
GemmResult gemm_bench(const GemmShape& shape, DType dtype, double min_seconds);

}  // namespace moe
