#include "data/span_corruption.h"

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace moe {

namespace {

// Python's round() and tf.round: to nearest, ties to even (the default FP rounding mode).
int round_even(double x) { return int(std::nearbyint(x)); }

// A uniform integer in [0, n) without modulo bias (portable: not std::uniform_int_distribution).
uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % n;
}

// n items cut into s non-empty segments, uniformly: s - 1 cut points among the n - 1 gaps
// (T5's _random_segmentation shuffles that indicator). Returns the segment lengths.
std::vector<int> random_segmentation(int n, int s, std::mt19937_64& rng) {
  std::vector<uint8_t> first(size_t(n > 0 ? n - 1 : 0), 0);
  for (int i = 0; i < s - 1; i++) first[size_t(i)] = 1;
  for (size_t i = first.size(); i > 1; i--) std::swap(first[i - 1], first[below(rng, i)]);  // Fisher-Yates
  std::vector<int> len;
  len.push_back(1);
  for (uint8_t f : first) {
    if (f) len.push_back(1);
    else len.back()++;
  }
  return len;
}

}  // namespace

SpanLengths span_lengths_for_raw(int raw, double density, double mean_span) {
  if (!(density > 0 && density < 1)) throw std::invalid_argument("span corruption: noise density must be in (0, 1)");
  if (!(mean_span >= 1) || !std::isfinite(mean_span))
    throw std::invalid_argument("span corruption: mean noise span length must be at least 1");
  if (raw < 2) throw std::invalid_argument("span corruption: a window needs at least 2 tokens");
  SpanLengths s;
  s.raw = raw;
  s.noise = std::min(std::max(round_even(raw * density), 1), raw - 1);
  s.spans = std::max(round_even(s.noise / mean_span), 1);
  s.inputs = raw - s.noise + s.spans + 1;
  s.targets = s.noise + s.spans + 1;
  return s;
}

SpanLengths span_corruption_lengths(int inputs_length, double density, double mean_span) {
  if (inputs_length > (1 << 24))
    throw std::invalid_argument("span corruption: inputs of " + std::to_string(inputs_length) +
                                " tokens: at most 2^24");
  if (span_lengths_for_raw(2, density, mean_span).inputs > inputs_length)
    throw std::invalid_argument("span corruption: inputs of " + std::to_string(inputs_length) +
                                " tokens are too short for a window of 2 (at least " +
                                std::to_string(span_lengths_for_raw(2, density, mean_span).inputs) + ")");
  int raw = 2;
  while (span_lengths_for_raw(raw + 1, density, mean_span).inputs <= inputs_length) raw++;
  SpanLengths s = span_lengths_for_raw(raw, density, mean_span);
  // T5's "minor hack" at density 0.5: targets no longer than the (round) inputs length.
  if (density == 0.5 && s.targets > s.inputs) s = span_lengths_for_raw(raw - 1, density, mean_span);
  if (s.spans > s.raw - s.noise)  // every noise span needs a non-noise run before it
    throw std::invalid_argument("span corruption: density " + std::to_string(density) + " and mean span " +
                                std::to_string(mean_span) + " give " + std::to_string(s.spans) +
                                " noise spans but only " + std::to_string(s.raw - s.noise) + " other tokens");
  return s;
}

std::vector<uint8_t> random_spans_noise_mask(int raw, double density, double mean_span, uint64_t seed) {
  const SpanLengths s = span_lengths_for_raw(raw, density, mean_span);
  if (s.spans > raw - s.noise)
    throw std::invalid_argument("span corruption: " + std::to_string(s.spans) + " noise spans need as many runs of the " +
                                std::to_string(raw - s.noise) + " other tokens (window of " + std::to_string(raw) +
                                ")");
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 0x5D1Cull);
  const std::vector<int> noise = random_segmentation(s.noise, s.spans, rng);
  const std::vector<int> clean = random_segmentation(raw - s.noise, s.spans, rng);
  std::vector<uint8_t> mask;
  mask.reserve(size_t(raw));
  for (int i = 0; i < s.spans; i++) {
    mask.insert(mask.end(), size_t(clean[size_t(i)]), 0);
    mask.insert(mask.end(), size_t(noise[size_t(i)]), 1);
  }
  return mask;
}

void span_corrupt(int32_t* inputs, int32_t* targets, const int32_t* tokens, const uint8_t* noise, int raw,
                  int32_t sentinel0, int32_t eos) {
  int ni = 0, nt = 0, span = 0;
  for (int i = 0; i < raw; i++) {
    const bool starts = noise[i] && (i == 0 || !noise[i - 1]);
    if (starts) {
      inputs[ni++] = sentinel0 - span;
      targets[nt++] = sentinel0 - span;
      span++;
    }
    if (noise[i]) targets[nt++] = tokens[i];
    else inputs[ni++] = tokens[i];
  }
  inputs[ni] = eos;
  targets[nt] = eos;
}

std::vector<int32_t> span_uncorrupt(const int32_t* inputs, int n_inputs, const int32_t* targets, int n_targets,
                                    int32_t sentinel0, int max_sentinels, int32_t eos) {
  auto sentinel = [&](int32_t t) { return t <= sentinel0 && t > sentinel0 - max_sentinels ? sentinel0 - t : -1; };
  if (n_inputs < 1 || inputs[n_inputs - 1] != eos || n_targets < 1 || targets[n_targets - 1] != eos)
    throw std::invalid_argument("span_uncorrupt: inputs and targets must end with eos");
  std::vector<int32_t> out;
  int t = 0;
  for (int i = 0; i + 1 < n_inputs; i++) {
    const int si = sentinel(inputs[i]);
    if (si < 0) {
      out.push_back(inputs[i]);
      continue;
    }
    if (t >= n_targets - 1 || sentinel(targets[t]) != si)
      throw std::invalid_argument("span_uncorrupt: sentinel " + std::to_string(si) + " of the inputs is not next in the targets");
    for (t++; t < n_targets - 1 && sentinel(targets[t]) < 0; t++) out.push_back(targets[t]);
  }
  if (t != n_targets - 1) throw std::invalid_argument("span_uncorrupt: targets hold spans the inputs do not name");
  return out;
}

}  // namespace moe
