// The MoE block's auxiliary losses and telemetry over the (global) batch: Switch's
// load-balancing loss E sum_e f_e P_e, the router z loss, the kept and chosen counts,
// drops and the router entropy (their gradients: router_backward, router.cpp).
#include <cmath>

#include "moe/moe_layer.h"

namespace moe {

void MoeBlock::losses_and_telemetry(int N, bool grouped) {
  const MoeSpec& sp = spec_;
  const int E = sp.E, K = sp.K;
  const std::vector<double>& lse = lse_;
  {  // losses and telemetry: sums over the tokens (of every rank when grouped)
    const int64_t Ng = int64_t(N) * (grouped ? group_->size() : 1);
    std::vector<double> sums(E + 2, 0.0);  // P_e sums, sum of lse^2, sum of entropies
    for (int n = 0; n < N; n++) {
      for (int e = 0; e < E; e++) {
        const double p = probs_[size_t(n) * E + e];
        sums[e] += p;
        if (p > 0) sums[E + 1] -= p * std::log(p);
      }
      sums[E] += lse[n] * lse[n];
    }
    if (grouped) group_->allreduce_sum(sums.data(), sums.size());
    if (!grouped) {
      g_counts_.assign(r_.counts.begin(), r_.counts.end());
      g_chosen_.assign(E, 0);
      for (int32_t e : r_.choice) g_chosen_[e]++;
    }
    g_tokens_ = Ng;
    g_dropped_ = Ng * K;
    for (int64_t c : g_counts_) g_dropped_ -= c;
    f_.assign(E, 0.0);
    for (int e = 0; e < E; e++) f_[e] = double(g_chosen_[e]) / (double(Ng) * K);
    l_.aux = 0;
    for (int e = 0; e < E; e++) l_.aux += f_[e] * sums[e] / double(Ng);
    l_.aux *= double(sp.aux_coef) * E;
    l_.z = sums[E] * double(sp.z_coef) / double(Ng);
    entropy_ = sums[E + 1] / double(Ng);
  }
}

}  // namespace moe
