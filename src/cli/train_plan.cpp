#include "cli/train_plan.h"

#include "tensor/cpu.h"

#include <cstdio>

#include "model/flops.h"

namespace moe::cli {

void print_train_plan(const ModelConfig& mc, const std::string& what, const MemoryOptions& o) {
  const MemoryEstimate m = model_memory_estimate(mc, o);
  const int P = o.ranks, EP = o.expert_parallel;
  std::printf("plan: %s, %s, %d layers, %.2fM parameters", what.c_str(), mc.family.c_str(), mc.n_layer,
              m.n_params / 1e6);
  if (mc.is_moe()) std::printf(" (%d experts, top-%d)", mc.n_experts, mc.top_k);
  std::printf("\n  batch %d x %d tokens, %s, recompute %s\n", o.B, o.T, o.bf16 ? "bf16" : "f32",
              o.recompute ? "on" : "off");
  std::printf("  %d rank%s = DP %d x EP %d, ZeRO-%d: %d sequence%s per rank", P, P == 1 ? "" : "s", P / EP, EP,
              o.zero, m.local_batch, m.local_batch == 1 ? "" : "s");
  if (mc.is_moe()) std::printf(", %d experts per MoE layer per rank", mc.n_experts / EP);
  std::printf("\n\n  %-16s %12s\n", "", "per rank");
  auto row = [](const char* name, double bytes, const std::string& note) {
    std::printf("  %-16s %12s  %s\n", name, bytes_human(bytes).c_str(), note.c_str());
  };
  char buf[160];
  std::snprintf(buf, sizeof buf, "%.2fM fp32", m.n_params_rank / 1e6);
  row("parameters", m.params, buf);
  row("gradients", m.grads, "fp32 (the all-reduce buffer)");
  row("moments", m.moments, o.zero ? "AdamW, fp32, sharded (ZeRO-1)" : "AdamW, fp32");
  row("bf16 copy", m.bf16_copy, !o.bf16 ? "(f32 compute)"
                                : bf16_gemm_route() == Bf16Gemm::Widen ? "weights for the bf16 GEMMs, and their operands widened to f32"
                                                                       : "weights for the bf16 GEMMs");
  std::snprintf(buf, sizeof buf, "one layer %s%s", bytes_human(m.layer_activations).c_str(),
                o.recompute ? ", kept once (recompute)" : ", kept per layer");
  row("activations", m.activations, buf);
  if (m.comm > 0) row("reduction buffers", m.comm, "staging buckets of the gradient sums (MPI's own memory not counted)");
  row("total", m.total(), "");
  const double have = machine_memory_bytes();
  std::snprintf(buf, sizeof buf, "%s", m.total() <= have ? "fits" : "DOES NOT FIT");
  row("machine memory", have, buf);
}

}  // namespace moe::cli
