#include "model/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace moe {

namespace {
uint64_t next_u64(uint64_t* s) {  // splitmix64 stream
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

int32_t sample_token(const std::vector<float>& logits, const SampleOptions& o, uint64_t* state) {
  const int V = int(logits.size());
  if (o.temperature <= 0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  // Candidates by decreasing logit (ties by id: deterministic).
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  int keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  std::vector<double> p(keep);
  double sum = 0;
  for (int i = 0; i < keep; i++) sum += (p[i] = std::exp(double(logits[idx[i]] - logits[idx[0]]) / o.temperature));
  if (o.top_p < 1.0f) {
    double acc = 0;
    int cut = keep;
    for (int i = 0; i < keep; i++) {
      acc += p[i] / sum;
      if (acc >= o.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = 0;
    for (int i = 0; i < keep; i++) sum += p[i];
  }
  double u = double(next_u64(state) >> 11) * 0x1.0p-53 * sum;
  for (int i = 0; i < keep; i++) {
    u -= p[i];
    if (u < 0) return idx[i];
  }
  return idx[keep - 1];
}

std::vector<int32_t> sample_with(const std::function<const std::vector<float>&(const std::vector<int32_t>&)>& feed,
                                 const std::function<bool()>& room, const std::vector<int32_t>& first, int V,
                                 const SampleOptions& o, const std::function<bool(int32_t)>& on_token) {
  uint64_t rng = o.seed;
  std::vector<int32_t> out;
  const std::vector<float>* logits = &feed(first);
  std::vector<char> seen;  // tokens in the sequence so far, for the repetition penalty
  std::vector<float> penalised;
  if (o.repetition_penalty != 1.0f) {
    seen.assign(size_t(V), 0);
    for (int32_t t : first) seen[size_t(t)] = 1;
  }
  for (int i = 0; i < o.max_tokens && room(); i++) {
    if (!seen.empty()) {
      penalised = *logits;
      for (size_t v = 0; v < penalised.size(); v++)
        if (seen[v]) penalised[v] = penalised[v] > 0 ? penalised[v] / o.repetition_penalty : penalised[v] * o.repetition_penalty;
      logits = &penalised;
    }
    int32_t t = sample_token(*logits, o, &rng);
    if (!seen.empty()) seen[size_t(t)] = 1;
    out.push_back(t);
    if (on_token && !on_token(t)) break;
    if (t == o.stop_token) break;
    if (!room()) break;
    logits = &feed({t});
  }
  return out;
}

}  // namespace moe
