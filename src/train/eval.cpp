#include "train/eval.h"

#include <cmath>
#include <vector>

namespace moe {

EvalResult evaluate(Model& m, const DataLoader& data, int batches, Compute compute) {
  const uint64_t avail = data.batches_per_epoch();
  const uint64_t n = batches <= 0 ? avail : std::min<uint64_t>(avail, uint64_t(batches));
  const size_t N = size_t(data.B()) * data.T();
  std::vector<int32_t> in(N), tgt(N);
  double sum = 0;
  uint64_t tokens = 0;
  ForwardOptions fo;
  fo.compute = compute;
  fo.training = false;  // MoE: the evaluation capacity factor
  for (uint64_t i = 0; i < n; i++) {
    data.batch_at(i, in.data(), tgt.data());
    float loss = m.forward(in.data(), tgt.data(), int(data.B()), int(data.T()), fo);
    sum += double(loss) * m.valid_targets();
    tokens += uint64_t(m.valid_targets());
  }
  EvalResult r;
  r.tokens = tokens;
  r.batches = int(n);
  r.loss = tokens ? sum / double(tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace moe
