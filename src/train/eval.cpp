#include "train/eval.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace moe {

EvalResult evaluate(Model& m, const DataLoader& data, int batches, Compute compute, Comm* comm, int replicas) {
  const uint64_t avail = data.batches_per_epoch();
  const uint64_t n = batches <= 0 ? avail : std::min<uint64_t>(avail, uint64_t(batches));
  const size_t N = size_t(data.B()) * data.T();
  // Groups of `replicas` consecutive ranks run the same batches (expert parallelism:
  // the ranks holding the parts of one model), each its share of the rows.
  const int P = comm ? comm->size() / replicas : 1, me = comm ? comm->rank() / replicas : 0;
  const int part = comm ? comm->rank() % replicas : 0, B = int(data.B()), Bp = B / replicas;
  if (B % replicas != 0)
    throw std::invalid_argument("--batch " + std::to_string(B) + " must be a multiple of the " +
                                std::to_string(replicas) + " expert-parallel ranks (each runs its share of a batch)");
  const size_t row0 = size_t(part) * Bp * data.T();
  std::vector<int32_t> in(N), tgt(N);
  std::vector<double> loss_sum(n, 0.0), count(n, 0.0);  // per batch
  ForwardOptions fo;
  fo.compute = compute;
  fo.training = false;  // MoE: the evaluation capacity factor
  for (uint64_t i = uint64_t(me); i < n; i += uint64_t(P)) {
    data.batch_at(i, in.data(), tgt.data());
    float loss = m.forward(in.data() + row0, tgt.data() + row0, Bp, int(data.T()), fo);
    loss_sum[i] = double(loss) * m.valid_targets();
    count[i] = double(m.valid_targets());
  }
  if (comm && comm->size() > 1) {
    comm->allreduce_sum(loss_sum.data(), n);
    comm->allreduce_sum(count.data(), n);
  }
  double sum = 0;
  uint64_t tokens = 0;
  for (uint64_t i = 0; i < n; i++) sum += loss_sum[i], tokens += uint64_t(count[i]);
  EvalResult r;
  r.tokens = tokens;
  r.batches = int(n);
  r.loss = tokens ? sum / double(tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace moe
