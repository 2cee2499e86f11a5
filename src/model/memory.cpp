#include "model/memory.h"

#include "model/family.h"
#include "tensor/cpu.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace moe {

double model_param_count(const ModelConfig& c) { return family_of(c.family).rules->param_count(c); }

double model_expert_param_count(const ModelConfig& c) {
  if (!c.is_moe()) return 0;
  const double C = c.n_embd, E = c.n_experts, Fe = c.expert_inner(), b = c.bias ? 1 : 0;
  const double gated = c.gated_mlp() ? 1 : 0;
  double n = 0;
  const int layers = c.n_layer + c.n_dec_layer;  // encoder-decoders: both stacks
  for (int l = 0; l < layers; l++)
    if (c.moe_layer(l < c.n_layer ? l : l - c.n_layer)) n += E * ((2 + gated) * Fe * C + b * (Fe + C));
  return n;
}

namespace {

// Bytes of one MoE block's buffers (moe_block.cpp) for N tokens: router logits and
// probabilities, routing, the R grouped rows (kept pairs, each expert's group padded
// to 16: counted as the upper bound) through the expert MLP, and the backward scratch.
void moe_block_bytes(const ModelConfig& c, double N, bool training, bool bf16, int EP, double* kept, double* shared) {
  const double C = c.n_embd, Fe = c.expert_inner(), E = c.n_experts, K = c.top_k;
  const double swiglu = c.gated_mlp() ? 1 : 0, bf = bf16 ? 1 : 0;
  double pairs = N * K;
  if (c.capacity_factor > 0) pairs = std::min(pairs, E * std::ceil(double(c.capacity_factor) * K * N / E));
  const double R = pairs + 15 * E;
  *kept = 4 * N * E + N * K * (4 + 1 + 8);  // probs; routing: choice, kept, weight
  double f = 4 * N * E + 8 * N + 4 * (R + N * K) + (c.router_jitter > 0 ? 4 * N * C : 0);  // logits, lse, rows, jitter
  f += 4 * R * (2 * C + (2 + swiglu) * Fe) + bf * 2 * R * (C + Fe);  // xg, y, h1, h3, a; bf16 xg, a
  if (training)  // dy, dxg, da, dh1, dh3, dweight, dlogits; bf16 dy, dh1, dh3
    f += 4 * (R * (2 * C + (2 + swiglu) * Fe) + N * K + N * E) + bf * 2 * R * (C + (1 + swiglu) * Fe);
  if (EP > 1)  // exchange.cpp: returned outputs and input gradients (fp32), send and receive staging
    f += 4 * C * ((training ? 2 : 1) * pairs + 2 * R);
  *shared = f;
}

}  // namespace

MemoryEstimate model_memory_estimate(const ModelConfig& c, const MemoryOptions& o) {
  MemoryEstimate m;
  const int P = std::max(1, o.ranks), EP = std::max(1, o.expert_parallel);
  const int DP = std::max(1, P / EP);
  m.n_params = model_param_count(c);
  const double experts = model_expert_param_count(c), shared = m.n_params - experts;
  m.n_params_rank = shared + experts / EP;
  m.params = 4 * m.n_params_rank;
  if (o.training) {
    m.grads = 4 * m.n_params_rank;
    // ZeRO-1: the replicated weights' moments over all P ranks, each expert's over the DP
    // ranks that hold it.
    m.moments = o.zero ? 8 * (shared / P + experts / EP / DP) : 8 * m.n_params_rank;
  }
  if (o.bf16) m.bf16_copy = 2 * m.n_params_rank;
  m.local_batch = (o.B + P - 1) / P;
  if (m.local_batch > 0 && o.T > 0) {
    double a = family_of(c.family).rules->arena_bytes(c, m.local_batch, o.T, o.recompute, &m.layer_activations);
    if (c.is_moe()) {
      // Per MoE layer its probabilities and routing; the rest once per block, or once in
      // all with recompute (the blocks share one set, swapped in).
      double kept = 0, buf = 0;
      moe_block_bytes(c, double(m.local_batch) * o.T, o.training, o.bf16, EP, &kept, &buf);
      int moe_layers = 0;
      for (int l = 0; l < c.n_layer; l++) moe_layers += c.moe_layer(l);
      a += moe_layers * kept + (o.recompute ? 1 : moe_layers) * buf;
    }
    // bf16 widened to f32 (tensor/cpu.h, below AVX-512): the calling thread's f32 copies of
    // one GEMM's operands, at most the head's (N, V) gradient and its (V, C) weight or a
    // (N, F) MLP activation; counted with the bf16 copies.
    if (o.bf16 && bf16_gemm_route() == Bf16Gemm::Widen) {
      const double N = double(m.local_batch) * o.T;
      m.bf16_copy += 4 * (N * std::max<double>(c.vocab_size, c.n_inner) +
                          std::max(double(c.vocab_size) * c.n_embd, N * std::max(c.n_inner, c.n_embd)));
    }
    m.activations = a;
  }
  // The reduction's staging (dist/reduce.h): a receive bucket and a gather bucket, plus
  // the packing bucket of expert parallelism; at most the gradients' size.
  if (o.training && P > 1) m.comm = std::min(4 * m.n_params_rank, (EP > 1 ? 3.0 : 2.0) * 4 * double(4 << 20));
  return m;
}

MemoryEstimate model_memory_estimate(const ModelConfig& c, bool training, bool bf16, int B, int T) {
  MemoryOptions o;
  o.training = training, o.bf16 = bf16, o.B = B, o.T = T;
  return model_memory_estimate(c, o);
}

bool peak_rss_reset() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

double peak_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

double machine_memory_bytes() {
  if (const char* s = std::getenv("MOE_MEMORY_LIMIT")) {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (end != s && v > 0) return v;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 1e18;
}

std::string bytes_human(double b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (b == 0) return "0 B";
  int u = 0;
  while (b >= 1024 && u < 6) b /= 1024, u++;
  char buf[48];
  std::snprintf(buf, sizeof buf, b < 10 ? "%.2f %s" : "%.1f %s", b, unit[u]);
  return buf;
}

void model_check_memory(const ModelConfig& c, bool training, bool bf16, int B, int T, const std::string& source) {
  MemoryOptions o;
  o.training = training, o.bf16 = bf16, o.B = B, o.T = T;
  model_check_memory(c, o, source);
}

void model_check_memory(const ModelConfig& c, const MemoryOptions& o, const std::string& source) {
  const bool training = o.training;
  const MemoryEstimate m = model_memory_estimate(c, o);
  const double have = machine_memory_bytes();
  if (m.total() <= have) return;
  char params[32];
  std::snprintf(params, sizeof params, "%.3g", m.n_params);
  throw std::runtime_error(source + ": this model (" + params + " parameters, " + std::to_string(c.n_layer) +
                           " layers, vocabulary " + std::to_string(c.vocab_size) + ") needs about " +
                           bytes_human(m.total()) + (training ? " to train" : " to run") + ", more than this machine's " +
                           bytes_human(have) + " of memory");
}

}  // namespace moe
