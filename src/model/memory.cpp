#include "model/memory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace moe {

double model_param_count(const ModelConfig& c) {
  const double C = c.n_embd, F = c.n_inner, V = c.vocab_size, D = double(c.n_embd / std::max(1, c.n_head));
  const double Cq = c.n_head * D, Ckv = c.n_kv_head * D, b = c.bias ? 1 : 0;
  const double gated = c.mlp == MlpKind::SwiGLU ? 1 : 0;
  double n = V * C;                                   // token embedding
  if (c.pos == PosKind::Learned) n += double(c.n_ctx) * C;
  for (int l = 0; l < c.n_layer; l++) {
    n += C * (1 + b) * 2;                             // two norms
    n += c.fused_qkv ? 3 * C * C + b * 3 * C : (Cq + 2 * Ckv) * C;
    n += C * Cq + b * C;                              // output projection
    if (c.moe_layer(l)) {
      const double E = c.n_experts, Fe = c.expert_inner();
      n += E * C + E * ((2 + gated) * Fe * C + b * (Fe + C));
    } else {
      n += (2 + gated) * F * C + b * (F + C);
    }
  }
  n += C * (1 + b);                                   // final norm
  if (!c.tied) n += V * C;                            // lm_head
  return n;
}

MemoryEstimate model_memory_estimate(const ModelConfig& c, bool training, bool bf16, int B, int T) {
  MemoryEstimate m;
  m.n_params = model_param_count(c);
  m.params = 4 * m.n_params;
  if (training) m.grads = 4 * m.n_params, m.moments = 8 * m.n_params;
  if (bf16) m.bf16_copy = 2 * m.n_params;
  if (B > 0 && T > 0) {
    // The arena (model.cpp, ensure_acts): per layer the residual input, norms, q/k/v,
    // attention probabilities, MLP activations and their bf16 copies; then logits and
    // the backward's scratch. fp32 unless noted.
    const double N = double(B) * T, C = c.n_embd, F = c.n_inner, V = c.vocab_size;
    const double D = double(c.n_embd / std::max(1, c.n_head)), Cq = c.n_head * D, Ckv = c.n_kv_head * D;
    const double A = double(B) * c.n_head * double(T) * T;
    const double mlp = c.mlp == MlpKind::SwiGLU ? 3 : 2;
    const double per_layer = 4 * (N * (5 * C + 4 + Cq * 2 + 2 * Ckv + mlp * F) + A + (c.fused_qkv ? 3 * N * C : 0)) +
                             2 * N * (2 * C + Cq + F);
    double a = c.n_layer * per_layer + 4 * N * (C + V + 6 * C + 2 * Cq + 2 * Ckv + 3 * F + 5) + 2 * N * (C + std::max({V, 3 * C, F}));
    // MoE blocks: routing and per-expert rows (N K of them) forward and backward.
    if (c.is_moe()) {
      const double R = N * c.top_k, Fe = c.expert_inner(), E = c.n_experts;
      const double block = 4 * (N * (3 * E + C) + R * (2 * C + 3 * Fe) + R * (2 * C + 3 * Fe) + N * E);
      int moe_layers = 0;
      for (int l = 0; l < c.n_layer; l++) moe_layers += c.moe_layer(l);
      a += moe_layers * block;
    }
    m.activations = training ? a : a / 2;  // inference skips the backward's half (roughly)
  }
  return m;
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
  int u = 0;
  while (b >= 1024 && u < 6) b /= 1024, u++;
  char buf[48];
  std::snprintf(buf, sizeof buf, b < 10 ? "%.2f %s" : "%.1f %s", b, unit[u]);
  return buf;
}

void model_check_memory(const ModelConfig& c, bool training, bool bf16, int B, int T, const std::string& source) {
  const MemoryEstimate m = model_memory_estimate(c, training, bf16, B, T);
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
