#include "model/describe.h"

#include <cstdio>

namespace moe {

ConfigText describe_config(const ModelConfig& c, double params) {
  ConfigText t;
  char buf[512];
  std::snprintf(buf, sizeof buf, "model: %s, %d layers, C=%d, %d heads (%d kv), F=%d, V=%d, %.2fM parameters",
                c.family.c_str(), c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.n_inner, c.vocab_size, params / 1e6);
  t.train_model = buf;
  std::snprintf(buf, sizeof buf, "%d layers, hidden %d, %d heads (%d kv, head %d), MLP %d, vocab %d, %d positions",
                c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim(), c.n_inner, c.vocab_size, c.n_ctx);
  t.inspect_shape = buf;
  std::snprintf(buf, sizeof buf, "capacity factor %.2f train / %.2f eval (<= 0: dropless)", c.capacity_factor,
                c.eval_capacity_factor);
  t.train_capacity = buf;
  std::snprintf(buf, sizeof buf, "capacity factor %.2f train, %.2f eval (0: dropless); aux %.3g, z %.3g",
                c.capacity_factor, c.eval_capacity_factor, c.aux_loss_coef, c.z_loss_coef);
  t.inspect_capacity = buf;
  if (const auto describe = arch_of(c).describe) describe(c, params, t);
  return t;
}

}  // namespace moe
