// Matrix multiply, row-major:  C (M,N) [+]= op(A) (M,K) · op(B) (K,N)
//   transA: A is stored (K,M);  transB: B is stored (N,K);  accumulate: C += instead of C =.
// The fast path is oneDNN (primitives cached per shape); bf16 takes bf16 A and B and
// accumulates and writes in fp32, by the route chosen once from the CPU's tier
// (tensor/cpu.h: oneDNN's bf16 matmul from AVX-512 up; below it the operands widened
// to f32 and an f32 matmul, the same products, summed in another order).
#pragma once
#include <cstddef>
#include "tensor/dtype.h"

namespace moe {

template <typename S>
void matmul_ref(S* C, const S* A, const S* B, int M, int N, int K, bool transA, bool transB, bool accumulate);

void matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA, bool transB,
            bool accumulate);
void matmul_bf16(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                 bool accumulate);
// The two routes themselves (tests compare them where both run; native needs AVX-512).
void matmul_bf16_native(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                        bool accumulate);
void matmul_bf16_widen(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                       bool accumulate);

// Strided fp32 form: rows of A, B and C start lda, ldb, ldc floats apart (e.g. one
// head's slice of a (T, H, D) tensor has ld = H*D). Safe to call from inside an
// OpenMP parallel region: each thread then runs its own GEMM single-threaded.
template <typename S>
void matmul_ld_ref(S* C, int ldc, const S* A, int lda, const S* B, int ldb, int M, int N, int K, bool transA,
                   bool transB, bool accumulate);
void matmul_ld(float* C, int ldc, const float* A, int lda, const float* B, int ldb, int M, int N, int K, bool transA,
               bool transB, bool accumulate);

// How many oneDNN primitives the cache holds (each shape once per threading
// context: inside an OpenMP parallel region, or outside it with N threads).
size_t matmul_primitives_cached();

}  // namespace moe
