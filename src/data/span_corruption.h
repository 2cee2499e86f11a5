// T5's span corruption objective (Raffel et al. 2020, section 3.1.4; the functions
// random_spans_noise_mask, noise_span_to_unique_sentinel and
// compute_input_and_target_lengths of T5's preprocessors):
//
//   a window of L raw tokens; n = round(L * density) of them are noise (clamped to
//   [1, L-1]), in s = max(1, round(n / mean_span)) spans. The noise tokens are cut into
//   s non-empty spans and the L - n others into s non-empty runs, each partition
//   uniformly random (s - 1 cut points among the n - 1, resp. L - n - 1, gaps); the
//   window is run 0, span 0, run 1, span 1, ... (it starts with a non-noise run).
//   inputs  = the non-noise tokens with span i replaced by sentinel i, then eos
//   targets = sentinel i followed by span i's tokens, for every i, then eos
//   sentinel i = sentinel0 - i (HF's <extra_id_i>: the top ids of the vocabulary).
//
// So the inputs are L - n + s + 1 tokens and the targets n + s + 1, the same for every
// window of L tokens: span_corruption_lengths gives the L whose inputs fill a given
// length (T5: 568 raw tokens -> 512 inputs, 114 targets at density 0.15, mean 3).
// The partitions are drawn from a seed (mt19937_64): deterministic, so a resumed run
// and every evaluation see the same masks.
#pragma once
#include <cstdint>
#include <vector>

namespace moe {

struct SpanLengths {
  int raw = 0;      // L: raw tokens per example
  int inputs = 0;   // encoder tokens (sentinels and eos included)
  int targets = 0;  // decoder tokens (sentinels and eos included)
  int noise = 0;    // n
  int spans = 0;    // s
};

// The lengths for one window of `raw` tokens. Throws when raw < 2 or density not in (0, 1)
// or mean_span < 1.
SpanLengths span_lengths_for_raw(int raw, double density, double mean_span);
// T5's compute_input_and_target_lengths: the largest raw length whose inputs fit in
// `inputs_length` (and, as T5 does at density 0.5, targets no longer than inputs).
// Throws when even 2 raw tokens do not fit.
SpanLengths span_corruption_lengths(int inputs_length, double density = 0.15, double mean_span = 3.0);

// The noise mask of a window of `raw` tokens (1 = noise), drawn from `seed`.
std::vector<uint8_t> random_spans_noise_mask(int raw, double density, double mean_span, uint64_t seed);

// inputs (lengths.inputs) and targets (lengths.targets) of `tokens` (raw) under `noise`.
void span_corrupt(int32_t* inputs, int32_t* targets, const int32_t* tokens, const uint8_t* noise, int raw,
                  int32_t sentinel0, int32_t eos);

// The inverse, for tests and inspection: the raw tokens from inputs and targets (both
// as span_corrupt wrote them). Throws when they do not fit together.
std::vector<int32_t> span_uncorrupt(const int32_t* inputs, int n_inputs, const int32_t* targets, int n_targets,
                                    int32_t sentinel0, int max_sentinels, int32_t eos);

}  // namespace moe
