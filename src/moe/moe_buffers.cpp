// MoeBlock's buffer sharing for activation recomputation (see moe_layer.h). Kept
// apart from moe_block.cpp: a new member buffer of the block must be added here too.
#include <algorithm>
#include <climits>
#include <utility>

#include "moe/moe_layer.h"

namespace moe {

namespace {
template <typename T>
size_t bytes_of(const std::vector<T>& v) {
  return v.size() * sizeof(T);
}
}  // namespace

void MoeBlock::swap_buffers(MoeBlock& o) {
  // Everything the forward writes and the backward reads, except r_, l_, probs_ and N_.
  std::swap(logits_, o.logits_), std::swap(lse_, o.lse_), std::swap(xr_, o.xr_);
  std::swap(offsets_, o.offsets_), std::swap(row_pair_, o.row_pair_), std::swap(pair_row_, o.pair_row_);
  std::swap(order_, o.order_);
  std::swap(xg_, o.xg_), std::swap(h1_, o.h1_), std::swap(h3_, o.h3_), std::swap(a_, o.a_), std::swap(y_, o.y_);
  std::swap(xg_bf_, o.xg_bf_), std::swap(a_bf_, o.a_bf_), std::swap(d_bf_, o.d_bf_);
  std::swap(dy_, o.dy_), std::swap(dweight_, o.dweight_), std::swap(da_, o.da_), std::swap(dh1_, o.dh1_);
  std::swap(dh3_, o.dh3_), std::swap(dxg_, o.dxg_), std::swap(dlogits_, o.dlogits_);
  std::swap(dh1b_, o.dh1b_), std::swap(dh3b_, o.dh3b_);
  std::swap(slot_pair_, o.slot_pair_), std::swap(pair_slot_, o.pair_slot_), std::swap(send_rows_, o.send_rows_);
  std::swap(recv_rows_, o.recv_rows_), std::swap(recv_row_, o.recv_row_), std::swap(yret_, o.yret_);
  std::swap(dxret_, o.dxret_), std::swap(send_buf_, o.send_buf_), std::swap(recv_buf_, o.recv_buf_);
  std::swap(row_gpair_, o.row_gpair_);
}

void MoeBlock::reserve_buffers(int N, bool backward, bool bf16) {
  const MoeSpec& sp = spec_;
  const size_t C = sp.C, F = sp.F, E = sp.E, K = sp.K, NK = size_t(N) * K;
  const int cap = sp.capacity(N);
  const size_t pairs = cap == INT_MAX ? NK : std::min(NK, E * size_t(cap));
  const size_t R = pairs + 15 * E;  // moe_block.cpp pads each expert's rows to a multiple of 16
  const bool swiglu = moe_gated(sp.mlp);  // a W3 (up) matrix and its buffers
  logits_.reserve(N * E), probs_.reserve(N * E), lse_.reserve(N);
  if (sp.jitter > 0) xr_.reserve(N * C);
  offsets_.reserve(E + 1), row_pair_.reserve(R), pair_row_.reserve(NK), order_.reserve(E);
  xg_.reserve(R * C), y_.reserve(R * C), h1_.reserve(R * F), a_.reserve(R * F);
  if (swiglu) h3_.reserve(R * F);
  if (bf16) xg_bf_.reserve(R * C), a_bf_.reserve(R * F);
  if (!backward) return;
  dy_.reserve(R * C), dxg_.reserve(R * C), da_.reserve(R * F), dh1_.reserve(R * F), dweight_.reserve(NK);
  dlogits_.reserve(N * E);
  if (swiglu) dh3_.reserve(R * F);
  if (bf16) d_bf_.reserve(R * C), dh1b_.reserve(R * F);
  if (bf16 && swiglu) dh3b_.reserve(R * F);
}

size_t MoeBlock::buffer_bytes() const {
  size_t b = bytes_of(logits_) + bytes_of(probs_) + bytes_of(lse_) + bytes_of(xr_) + bytes_of(offsets_) +
             bytes_of(row_pair_) + bytes_of(pair_row_) + bytes_of(order_);
  b += bytes_of(xg_) + bytes_of(h1_) + bytes_of(h3_) + bytes_of(a_) + bytes_of(y_);
  b += bytes_of(xg_bf_) + bytes_of(a_bf_) + bytes_of(d_bf_);
  b += bytes_of(dy_) + bytes_of(dweight_) + bytes_of(da_) + bytes_of(dh1_) + bytes_of(dh3_) + bytes_of(dxg_) +
       bytes_of(dlogits_) + bytes_of(dh1b_) + bytes_of(dh3b_);
  b += bytes_of(row_gpair_) + bytes_of(slot_pair_) + bytes_of(pair_slot_) + bytes_of(recv_row_) + bytes_of(yret_) + bytes_of(dxret_) +
       bytes_of(send_buf_) + bytes_of(recv_buf_);
  return b + bytes_of(r_.choice) + bytes_of(r_.kept) + bytes_of(r_.weight) + bytes_of(r_.counts);
}

}  // namespace moe
