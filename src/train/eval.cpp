#include "train/eval.h"

#include "model/arch.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace moe {

void check_dataset_for(const DatasetInfo& ds, const ModelConfig& mc) { arch_of(mc).check_dataset(ds, mc); }

std::unique_ptr<BatchSource> model_batches(const DatasetInfo& ds, const ModelConfig& mc, const std::string& shard,
                                           int B, int seq, uint64_t seed) {
  return arch_of(mc).batches(ds, mc, shard, B, seq, seed);
}

EvalResult evaluate(LanguageModel& m, const BatchSource& data, int batches, Compute compute, Comm* comm,
                    int replicas) {
  const uint64_t avail = data.batches_per_epoch();
  const uint64_t n = batches <= 0 ? avail : std::min<uint64_t>(avail, uint64_t(batches));
  // Groups of `replicas` consecutive ranks run the same batches (expert parallelism:
  // the ranks holding the parts of one model), each its share of the rows.
  const int P = comm ? comm->size() / replicas : 1, me = comm ? comm->rank() / replicas : 0;
  const int part = comm ? comm->rank() % replicas : 0, B = int(data.B()), Bp = B / replicas;
  if (B % replicas != 0)
    throw std::invalid_argument("--batch " + std::to_string(B) + " must be a multiple of the " +
                                std::to_string(replicas) + " expert-parallel ranks (each runs its share of a batch)");
  TokenBatch batch;
  std::vector<double> loss_sum(n, 0.0), count(n, 0.0);  // per batch
  ForwardOptions fo;
  fo.compute = compute;
  fo.training = false;  // MoE: the evaluation capacity factor
  for (uint64_t i = uint64_t(me); i < n; i += uint64_t(P)) {
    data.batch_at(i, batch);
    float loss = m.forward_rows(batch, part * Bp, Bp, fo);
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
