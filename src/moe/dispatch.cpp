// MoE dispatch and combine in one process: each expert's kept rows gathered together
// (padded to 16 rows), the experts' outputs scattered back weighted, and the matching
// backward (the rows' output gradients and the combine weights' gradients; the input
// gradients scattered back to the tokens). Expert parallelism: exchange.cpp.
#include <cstring>

#include "moe/block_util.h"
#include "moe/moe_layer.h"

namespace moe {

void MoeBlock::dispatch(const float* x, int N, bool bf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K;
  // Dispatch: rows of each expert contiguous, tokens in order within an expert. Each
  // expert's group is padded with zero rows to a multiple of 16, so the GEMMs see few
  // distinct row counts (primitives are cached per shape; see matmul.cpp). Padding
  // rows have no pair (-1), get zero gradients and are never combined.
  offsets_.assign(E + 1, 0);
  for (int e = 0; e < E; e++) offsets_[e + 1] = offsets_[e] + padded(r_.counts[e]);
  const int R = offsets_[E];
  assign_rows(offsets_, R, row_pair_, pair_row_);
  if (sp.expert_dropout > 0) {
    row_gpair_.resize(R);
    for (int row = 0; row < R; row++)
      row_gpair_[row] = row_pair_[row] < 0 ? -1 : sp.token_offset * K + row_pair_[row];
  }
  plan_experts();
  xg_.resize(size_t(R) * C);
#pragma omp parallel for schedule(static)
  for (int row = 0; row < R; row++) {
    if (row_pair_[row] >= 0) std::memcpy(&xg_[size_t(row) * C], x + size_t(row_pair_[row] / K) * C, C * sizeof(float));
    else std::memset(&xg_[size_t(row) * C], 0, C * sizeof(float));
  }
  if (bf) bf16_copy(xg_bf_, xg_);
}

// Kept pairs in expert order (each expert's in pair order, from starts[e]): row_pair
// (rows entries, -1 where none: padding) and pair_row (N K entries, -1 when dropped).
void MoeBlock::assign_rows(const std::vector<int32_t>& starts, int rows, std::vector<int32_t>& row_pair,
                           std::vector<int32_t>& pair_row) const {
  const int N = r_.N, K = spec_.K;
  row_pair.assign(rows, -1);
  pair_row.assign(size_t(N) * K, -1);
  std::vector<int32_t> fill(starts.begin(), starts.begin() + spec_.E);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      if (r_.kept[size_t(n) * K + k]) {
        const int row = fill[r_.choice[size_t(n) * K + k]]++;
        row_pair[row] = n * K + k;
        pair_row[size_t(n) * K + k] = row;
      }
}

// Each token adds its kept choices' outputs (rows[pair_row[pair]]), weighted, in choice order.
void MoeBlock::combine(float* out, int N, const std::vector<int32_t>& pair_row, const std::vector<float>& rows) const {
  const int C = spec_.C, K = spec_.K;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* o = out + size_t(n) * C;
    std::memset(o, 0, C * sizeof(float));
    for (int k = 0; k < K; k++) {
      const int row = pair_row[size_t(n) * K + k];
      if (row < 0) continue;
      const float wt = float(r_.weight[size_t(n) * K + k]);
      const float* y = &rows[size_t(row) * C];
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wt * y[c];
    }
  }
}

bool MoeBlock::combine_backward(const float* dout) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K, N = N_;
  const bool bf = bf_;
  // Combine backward: dy rows = weight * dout[token]; d weight = dout[token] . y.
  // Scratch reused across calls: fresh multi-megabyte vectors would page-fault every
  // step (measured: the backward took 4x the dense MLP's time before this).
  std::vector<float>& dweight = dweight_;
  dweight.assign(size_t(N) * K, 0.0f);
  bool dy_bf_ready = false;
  if (ep_) {  // computed where the tokens are, then sent to the experts' ranks
    ep_backward_send(dout, bf);
    dy_bf_ready = bf && dy_.empty();
  } else {
    const int R = offsets_[E];
    std::vector<float>& dy = dy_;
    dy.resize(size_t(R) * C);
#pragma omp parallel for schedule(static)
    for (int row = 0; row < R; row++) {
      const int pair = row_pair_[row], n = pair / K;
      if (pair < 0) {  // padding: no gradient
        std::memset(&dy[size_t(row) * C], 0, C * sizeof(float));
        continue;
      }
      const float wt = float(r_.weight[pair]);
      const float* d = dout + size_t(n) * C;
      const float* y = &y_[size_t(row) * C];
      float* dyr = &dy[size_t(row) * C];
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < C; c++) {
        dyr[c] = wt * d[c];
        s += d[c] * y[c];
      }
      dweight[pair] = s;
    }
  }
  return dy_bf_ready;
}

void MoeBlock::scatter_backward(float* dx) {
  const int C = spec_.C, K = spec_.K, N = N_;
  // Scatter the experts' input gradients back to the tokens, in choice order.
  const std::vector<int32_t>& rows = ep_ ? pair_slot_ : pair_row_;
  const std::vector<float>& src = ep_ ? dxret_ : dxg_;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const int row = rows[size_t(n) * K + k];
      if (row < 0) continue;
      float* d = dx + size_t(n) * C;
      const float* s = &src[size_t(row) * C];
#pragma omp simd
      for (int c = 0; c < C; c++) d[c] += s[c];
    }
}

}  // namespace moe
