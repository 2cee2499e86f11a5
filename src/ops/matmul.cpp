#include "ops/matmul.h"

#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

namespace moe {

// ---------------------------------------------------------------- reference

template <typename S>
void matmul_ref(S* C, const S* A, const S* B, int M, int N, int K, bool transA, bool transB, bool accumulate) {
  for (int m = 0; m < M; m++) {
    for (int n = 0; n < N; n++) {
      double acc = 0.0;
      for (int k = 0; k < K; k++) {
        double a = transA ? A[size_t(k) * M + m] : A[size_t(m) * K + k];
        double b = transB ? B[size_t(n) * K + k] : B[size_t(k) * N + n];
        acc += a * b;
      }
      S* c = &C[size_t(m) * N + n];
      *c = accumulate ? S(*c + acc) : S(acc);
    }
  }
}
template void matmul_ref<float>(float*, const float*, const float*, int, int, int, bool, bool, bool);
template void matmul_ref<double>(double*, const double*, const double*, int, int, int, bool, bool, bool);

// ---------------------------------------------------------------- oneDNN

namespace {

using dnnl::memory;
using Dt = memory::data_type;

struct Engine {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{eng};
};

Engine& engine() {
  static Engine e;
  return e;
}

// A primitive per (dtype, shape, transposes, accumulate). Creating one costs
// micro- to milliseconds (JIT); the training loop repeats the same few shapes.
using Key = std::tuple<int, int, int, int, bool, bool, bool>;

struct Cache {
  std::mutex mu;
  std::map<Key, std::pair<dnnl::matmul, memory::desc[3]>> prims;
};

Cache& cache() {
  static Cache c;
  return c;
}

void run(void* C, const void* A, const void* B, Dt dt, int M, int N, int K, bool transA, bool transB,
         bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = 0, or C unchanged
    if (!accumulate) std::memset(C, 0, size_t(M) * N * sizeof(float));
    return;
  }
  Engine& e = engine();
  Key key{int(dt), M, N, K, transA, transB, accumulate};
  dnnl::matmul prim;
  memory::desc a_md, b_md, c_md;
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto it = cache().prims.find(key);
    if (it == cache().prims.end()) {
      // Transposed operands are the same bytes with swapped strides: no copies.
      a_md = memory::desc({M, K}, dt, transA ? memory::dims{1, M} : memory::dims{K, 1});
      b_md = memory::desc({K, N}, dt, transB ? memory::dims{1, K} : memory::dims{N, 1});
      c_md = memory::desc({M, N}, Dt::f32, memory::dims{N, 1});
      dnnl::primitive_attr attr;
      if (accumulate) {
        dnnl::post_ops po;
        po.append_sum(1.0f);
        attr.set_post_ops(po);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, e.eng);
      auto& slot = cache().prims[key];
      slot.first = dnnl::matmul(pd);
      slot.second[0] = a_md, slot.second[1] = b_md, slot.second[2] = c_md;
      it = cache().prims.find(key);
    }
    prim = it->second.first;
    a_md = it->second.second[0], b_md = it->second.second[1], c_md = it->second.second[2];
  }
  memory a(a_md, e.eng, const_cast<void*>(A));
  memory b(b_md, e.eng, const_cast<void*>(B));
  memory c(c_md, e.eng, C);
  prim.execute(e.stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  e.stream.wait();
}

}  // namespace

void matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA, bool transB,
            bool accumulate) {
  run(C, A, B, Dt::f32, M, N, K, transA, transB, accumulate);
}

void matmul_bf16(float* C, const bf16* A, const bf16* B, int M, int N, int K, bool transA, bool transB,
                 bool accumulate) {
  run(C, A, B, Dt::bf16, M, N, K, transA, transB, accumulate);
}

}  // namespace moe
