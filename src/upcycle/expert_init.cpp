#include "upcycle/expert_init.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace moe {

namespace {

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0xD1B54A32D192ED03ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// Copies the expert's shard of dense into out: rows of out = rows of dense unless the
// unit axis is 0 (then F/G of them), likewise columns.
void take_shard(const ExpertRecipe& r, MlpPart part, int axis, const float* dense, int64_t rows, int64_t cols, int e,
                float* out) {
  if (part == MlpPart::OutBias || r.G == 1) {
    std::copy(dense, dense + rows * cols, out);
    return;
  }
  const int64_t W = r.expert_width(), u0 = int64_t(e % r.G) * W;
  if (axis == 0) {
    std::copy(dense + u0 * cols, dense + (u0 + W) * cols, out);
  } else {
    for (int64_t i = 0; i < rows; i++) std::copy(dense + i * cols + u0, dense + i * cols + u0 + W, out + i * W);
  }
}

// Calls f(index) for every element of unit u of the expert tensor (shape orows x ocols).
template <typename Fn>
void for_unit(int axis, int64_t orows, int64_t ocols, int u, Fn f) {
  if (axis == 0)
    for (int64_t j = 0; j < ocols; j++) f(int64_t(u) * ocols + j);
  else
    for (int64_t i = 0; i < orows; i++) f(i * ocols + u);
}

}  // namespace

Role expert_source_role(Role r, MlpKind mlp, MlpPart* part) {
  switch (r) {
    case Role::ExpertW1: *part = MlpPart::In; return mlp == MlpKind::SwiGLU ? Role::Gate : Role::Up;
    case Role::ExpertW3: *part = MlpPart::In; return Role::Up;
    case Role::ExpertB1: *part = MlpPart::InBias; return Role::UpBias;
    case Role::ExpertW2: *part = MlpPart::Out; return Role::Down;
    case Role::ExpertB2: *part = MlpPart::OutBias; return Role::DownBias;
    default: return r;
  }
}

TensorStats tensor_stats(const float* x, size_t n) {
  double s = 0, s2 = 0;
  for (size_t i = 0; i < n; i++) s += x[i], s2 += double(x[i]) * x[i];
  TensorStats st;
  if (n == 0) return st;
  st.mean = s / double(n);
  st.std = std::sqrt(std::max(0.0, s2 / double(n) - st.mean * st.mean));
  return st;
}

std::vector<int> drop_units(const ExpertRecipe& r, int e) {
  const int W = r.expert_width();
  const int n = int(std::lround(double(r.drop_rate) * W));
  if (n <= 0) return {};
  std::vector<int> idx(W);
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(mix(mix(r.seed, 0x64726f70 + uint64_t(r.layer)), uint64_t(e)));
  // Partial Fisher-Yates: the first n entries are a uniform random subset.
  for (int i = 0; i < n; i++) {
    std::uniform_int_distribution<int> pick(i, W - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  return idx;
}

void make_expert(const ExpertRecipe& r, MlpPart part, int axis, const float* dense, int64_t rows, int64_t cols,
                 const TensorStats& st, int e, uint64_t salt, float* out) {
  const bool sharded = part != MlpPart::OutBias && r.G > 1;
  const int64_t orows = sharded && axis == 0 ? r.expert_width() : rows;
  const int64_t ocols = sharded && axis == 1 ? r.expert_width() : cols;
  const int64_t n = orows * ocols;
  take_shard(r, part, axis, dense, rows, cols, e, out);
  std::mt19937_64 rng(mix(mix(mix(r.seed, uint64_t(r.layer)), uint64_t(e)), salt));
  if (r.drop_rate > 0 && part != MlpPart::OutBias) {
    std::normal_distribution<double> init(st.mean, st.std);
    for (int u : drop_units(r, e)) for_unit(axis, orows, ocols, u, [&](int64_t i) { out[i] = float(init(rng)); });
  }
  if (r.noise > 0 && st.std > 0) {
    std::normal_distribution<double> noise(0.0, double(r.noise) * st.std);
    for (int64_t i = 0; i < n; i++) out[i] = float(out[i] + noise(rng));
  }
  const float s = part == MlpPart::Out ? r.scale : part == MlpPart::OutBias ? r.bias_scale : 1.0f;
  if (s != 1.0f)
    for (int64_t i = 0; i < n; i++) out[i] *= s;
}

void expert_moment(const ExpertRecipe& r, MlpPart part, int axis, const float* dense, int64_t rows, int64_t cols,
                   int e, float* out) {
  const bool sharded = part != MlpPart::OutBias && r.G > 1;
  const int64_t orows = sharded && axis == 0 ? r.expert_width() : rows;
  const int64_t ocols = sharded && axis == 1 ? r.expert_width() : cols;
  take_shard(r, part, axis, dense, rows, cols, e, out);
  if (r.drop_rate > 0 && part != MlpPart::OutBias)
    for (int u : drop_units(r, e)) for_unit(axis, orows, ocols, u, [&](int64_t i) { out[i] = 0.0f; });
}

std::vector<float> router_init(int E, int G, int C, float std, uint64_t seed, int layer) {
  std::vector<float> w(size_t(E) * C, 0.0f);
  if (std <= 0) return w;
  for (int g = 0; g < E / G; g++) {
    std::mt19937_64 rng(mix(mix(seed, 0x726f75746572ull + uint64_t(layer)), uint64_t(g)));
    std::normal_distribution<double> d(0.0, std);
    float* row = w.data() + size_t(g) * G * C;
    for (int c = 0; c < C; c++) row[c] = float(d(rng));
    for (int k = 1; k < G; k++) std::copy(row, row + C, row + size_t(k) * C);
  }
  return w;
}

}  // namespace moe
