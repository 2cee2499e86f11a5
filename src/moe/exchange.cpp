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

#include "moe/block_util.h"
#include "moe/moe_layer.h"

namespace moe {

namespace {


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
}

void MoeBlock::ep_dispatch(const float* x, int N, bool bf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, E = sp.E, K = sp.K, P = ep_->size(), El = El_;
  // Slots: expert-major, pair order within an expert (no padding).
  std::vector<int32_t> starts(E + 1, 0);
  for (int e = 0; e < E; e++) starts[e + 1] = starts[e] + r_.counts[e];
  const int S = starts[E];
  assign_rows(starts, S, slot_pair_, pair_slot_);
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
  ep_send_regroup(bf, xg_, xg_bf_);
}

// send_buf_ (rows of rb bytes in slot order) to the experts' ranks; the rows received
// are regrouped per local expert (recv_row_) into `f32`, or into `half` (then `f32` is
// emptied: only the bf16 copy exists), padding rows zero.
void MoeBlock::ep_send_regroup(bool as_bf16, std::vector<float>& f32, std::vector<bf16>& half) {
  const int C = spec_.C, Rin = int(recv_row_.size()), R = offsets_[El_];
  const size_t rb = as_bf16 ? C * sizeof(bf16) : C * sizeof(float);
  recv_buf_.resize(size_t(Rin) * rb);
  ep_->alltoallv(send_buf_.data(), times(send_rows_, rb), recv_buf_.data(), times(recv_rows_, rb));
  char* dst;
  if (as_bf16) {
    f32.clear();
    half.assign(size_t(R) * C, bf16{});
    dst = reinterpret_cast<char*>(half.data());
  } else {
    f32.assign(size_t(R) * C, 0.0f);
    dst = reinterpret_cast<char*>(f32.data());
  }
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(dst + size_t(recv_row_[q]) * rb, recv_buf_.data() + size_t(q) * rb, rb);
}

// Expert side: rows of `grouped` (outputs, or input gradients; fp32) go back to the
// ranks that sent them, arriving in slot order in `by_slot`.
void MoeBlock::ep_return(const std::vector<float>& grouped, std::vector<float>& by_slot) {
  const int C = spec_.C, Rin = int(recv_row_.size()), S = int(slot_pair_.size());
  const size_t rb = C * sizeof(float);
  recv_buf_.resize(size_t(Rin) * rb);
#pragma omp parallel for schedule(static)
  for (int q = 0; q < Rin; q++) std::memcpy(recv_buf_.data() + size_t(q) * rb, &grouped[size_t(recv_row_[q]) * C], rb);
  by_slot.resize(size_t(S) * C);
  ep_->alltoallv(recv_buf_.data(), times(recv_rows_, rb), by_slot.data(), times(send_rows_, rb));
}

// Token side: dy = weight * dout[token] per slot and d weight = dout[token] . y; the dy
// rows travel to the experts (bf16 when the experts read only their bf16 copy: bf16
// compute without an output bias) and are regrouped as in the forward.
void MoeBlock::ep_backward_send(const float* dout, bool bf) {
  const MoeSpec& sp = spec_;
  const int C = sp.C, K = sp.K, S = int(slot_pair_.size());
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
  ep_send_regroup(half, dy_, d_bf_);
}

}  // namespace moe
