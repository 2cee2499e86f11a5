// Expert parallelism for MoeBlock (see moe_layer.h): the all-to-all exchanges that take
// each kept (token, choice) row to the rank holding its expert and bring the result
// back, in the forward and in the backward.
//
// Token side: the kept pairs are laid out expert-major ("slots": expert 0's pairs in
// pair order, then expert 1's, ...), which is also rank-major since rank d holds
// experts [d El, (d+1) El). Expert side: rows arrive from rank 0, 1, ..., each
// expert-major; they are regrouped per local expert (rank order within an expert:
// the global token order) and padded to a multiple of 16 rows as in one process.
#include <omp.h>

#include <cstring>
#include <stdexcept>

#include "moe/moe_layer.h"

namespace moe {

namespace {

int padded(int rows) { return (rows + 15) / 16 * 16; }

std::vector<size_t> times(const std::vector<size_t>& rows, size_t bytes) {
  std::vector<size_t> out(rows.size());
  for (size_t i = 0; i < rows.size(); i++) out[i] = rows[i] * bytes;
  return out;
}

}  // namespace

void MoeBlock::set_expert_group(Comm* ep) {
  const int P = ep ? ep->size() : 1;
  if (spec_.E % P != 0)
    throw std::invalid_argument("expert parallelism: " + std::to_string(spec_.E) + " experts do not split over " +
                                std::to_string(P) + " ranks");
  ep_ = P > 1 ? ep : nullptr;
  El_ = spec_.E / P;
  e0_ = P > 1 ? ep->rank() * El_ : 0;
}

void MoeBlock::ep_dispatch(const float* x, int N, bool bf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K, P = ep_->size(), El = El_;
  // Slots: expert-major, pair order within an expert.
  std::vector<int32_t> fill(E + 1, 0);
  for (int e = 0; e < E; e++) fill[e + 1] = fill[e] + r_.counts[e];
  const int S = fill[E];
  slot_pair_.assign(S, -1);
  pair_slot_.assign(size_t(N) * K, -1);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      if (r_.kept[size_t(n) * K + k]) {
        const int slot = fill[r_.choice[size_t(n) * K + k]]++;
        slot_pair_[slot] = n * K + k;
        pair_slot_[size_t(n) * K + k] = slot;
      }
  // Counts first: rank d learns how many rows each rank sends to each of its experts.
  std::vector<int32_t> rc(size_t(P) * El);  // rc[s El + i]: rows from rank s for local expert i
  const std::vector<size_t> per_rank(P, El * sizeof(int32_t));
  ep_->alltoallv(r_.counts.data(), per_rank, rc.data(), per_rank);
  send_rows_.assign(P, 0), recv_rows_.assign(P, 0);
  for (int d = 0; d < P; d++)
    for (int i = 0; i < El; i++) send_rows_[d] += r_.counts[d * El + i], recv_rows_[d] += rc[size_t(d) * El + i];
  offsets_.assign(El + 1, 0);
  for (int i = 0; i < El; i++) {
    int rows = 0;
    for (int s = 0; s < P; s++) rows += rc[size_t(s) * El + i];
    offsets_[i + 1] = offsets_[i] + padded(rows);
  }
  const int R = offsets_[El];
  row_pair_.assign(R, -1);  // real rows: 0 (no local pair index on this side), padding -1
  recv_row_.clear();
  {
    std::vector<int32_t> next(offsets_.begin(), offsets_.end() - 1);
    for (int s = 0; s < P; s++)
      for (int i = 0; i < El; i++)
        for (int j = 0; j < rc[size_t(s) * El + i]; j++) {
          row_pair_[next[i]] = 0;
          recv_row_.push_back(next[i]++);
        }
  }
  plan_experts();
  // The rows themselves: bf16 when the experts read only their bf16 copy.
  const size_t rb = bf ? C * sizeof(bf16) : C * sizeof(float);
  send_buf_.resize(size_t(S) * rb);
#pragma omp parallel for schedule(static)
  for (int slot = 0; slot < S; slot++) {
    const float* src = x + size_t(slot_pair_[slot] / K) * C;
    char* dst = send_buf_.data() + size_t(slot) * rb;
    if (bf) f32_to_bf16(reinterpret_cast<bf16*>(dst), src, C);
    else std::memcpy(dst, src, rb);
  }
  const int Rin = int(recv_row_.size());
  if (sp.expert_dropout > 0) {  // the rows' global pair indices (the mask is drawn by them)
    std::vector<int64_t> ids(S), got(Rin);
    for (int slot = 0; slot < S; slot++) ids[slot] = sp.token_offset * K + slot_pair_[slot];
    ep_->alltoallv(ids.data(), times(send_rows_, sizeof(int64_t)), got.data(), times(recv_rows_, sizeof(int64_t)));
    row_gpair_.assign(R, -1);
    for (int q = 0; q < Rin; q++) row_gpair_[recv_row_[q]] = got[q];
  }
  recv_buf_.resize(size_t(Rin) * rb);
  ep_->alltoallv(send_buf_.data(), times(send_rows_, rb), recv_buf_.data(), times(recv_rows_, rb));
  if (bf) {
    xg_.clear();
    xg_bf_.assign(size_t(R) * C, bf16{});
  } else {
    xg_.assign(size_t(R) * C, 0.0f);
  }
  char* xg = bf ? reinterpret_cast<char*>(xg_bf_.data()) : reinterpret_cast<char*>(xg_.data());
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(xg + size_t(recv_row_[q]) * rb, recv_buf_.data() + size_t(q) * rb, rb);
}

// The experts' output rows go back (fp32) to the ranks that sent them, and each token
// adds its kept choices' outputs, weighted, in choice order.
void MoeBlock::ep_combine(float* out, int N) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, K = sp.K, Rin = int(recv_row_.size()), S = int(slot_pair_.size());
  const size_t rb = C * sizeof(float);
  recv_buf_.resize(size_t(Rin) * rb);
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(recv_buf_.data() + size_t(q) * rb, &y_[size_t(recv_row_[q]) * C], rb);
  yret_.resize(size_t(S) * C);
  ep_->alltoallv(recv_buf_.data(), times(recv_rows_, rb), yret_.data(), times(send_rows_, rb));
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* o = out + size_t(n) * C;
    std::memset(o, 0, C * sizeof(float));
    for (int k = 0; k < K; k++) {
      const int slot = pair_slot_[size_t(n) * K + k];
      if (slot < 0) continue;
      const float wt = float(r_.weight[size_t(n) * K + k]);
      const float* y = &yret_[size_t(slot) * C];
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wt * y[c];
    }
  }
}

// Token side: dy = weight * dout[token] per slot and d weight = dout[token] . y; the dy
// rows travel to the experts (bf16 when the experts read only their bf16 copy: bf16
// compute without an output bias) and are regrouped as in the forward.
void MoeBlock::ep_backward_send(const float* dout, bool bf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, K = sp.K, S = int(slot_pair_.size()), Rin = int(recv_row_.size()), R = offsets_[El_];
  const bool half = bf && !sp.bias;
  const size_t rb = half ? C * sizeof(bf16) : C * sizeof(float);
  send_buf_.resize(size_t(S) * rb);
  std::vector<float>& dweight = dweight_;
#pragma omp parallel
  {
    std::vector<float> row(C);
#pragma omp for schedule(static)
    for (int slot = 0; slot < S; slot++) {
      const int pair = slot_pair_[slot], n = pair / K;
      const float wt = float(r_.weight[pair]);
      const float* d = dout + size_t(n) * C;
      const float* y = &yret_[size_t(slot) * C];
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < C; c++) {
        row[c] = wt * d[c];
        s += d[c] * y[c];
      }
      dweight[pair] = s;
      char* dst = send_buf_.data() + size_t(slot) * rb;
      if (half) f32_to_bf16(reinterpret_cast<bf16*>(dst), row.data(), C);
      else std::memcpy(dst, row.data(), rb);
    }
  }
  recv_buf_.resize(size_t(Rin) * rb);
  ep_->alltoallv(send_buf_.data(), times(send_rows_, rb), recv_buf_.data(), times(recv_rows_, rb));
  char* dy;
  if (half) {
    dy_.clear();
    d_bf_.assign(size_t(R) * C, bf16{});
    dy = reinterpret_cast<char*>(d_bf_.data());
  } else {
    dy_.assign(size_t(R) * C, 0.0f);
    dy = reinterpret_cast<char*>(dy_.data());
  }
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(dy + size_t(recv_row_[q]) * rb, recv_buf_.data() + size_t(q) * rb, rb);
}

// Expert side: the input gradients (fp32) go back to the tokens' ranks, in slot order.
void MoeBlock::ep_backward_return() {
  const int C = spec_.C, Rin = int(recv_row_.size()), S = int(slot_pair_.size());
  const size_t rb = C * sizeof(float);
  recv_buf_.resize(size_t(Rin) * rb);
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(recv_buf_.data() + size_t(q) * rb, &dxg_[size_t(recv_row_[q]) * C], rb);
  dxret_.resize(size_t(S) * C);
  ep_->alltoallv(recv_buf_.data(), times(recv_rows_, rb), dxret_.data(), times(send_rows_, rb));
}

}  // namespace moe
