// Finite-difference gradient checks on the double-precision reference path.
// Each test defines the op's scalar loss L = sum(out * g) for a fixed random g,
// runs the reference backward with dout = g, and compares every input's analytic
// gradient with central differences (testutil.h: h = 1e-5, tol = 1e-6 relative;
// reason: truncation error ~h^2 = 1e-10 and rounding ~1e-16/h = 1e-11 per unit of
// loss are both far below 1e-6, while any wrong term in a backward is O(1)).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "testutil.h"

namespace moe::test {

struct GradInput {
  std::string name;
  std::vector<double>* x;          // the input, perturbed in place by the check
  const std::vector<double>* grad;  // its analytic gradient
};

// `loss` recomputes L from the current inputs.
inline void check_grads(const std::vector<GradInput>& inputs, const std::function<double()>& loss,
                        const std::string& op) {
  for (const auto& in : inputs) EXPECT_TRUE(grad_check(*in.x, *in.grad, loss, op + " d/d" + in.name));
}

}  // namespace moe::test
