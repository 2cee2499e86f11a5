#include "model/flops.h"

#include <algorithm>
#include <vector>

#include "model/arch.h"

namespace moe {


ParamCounts model_param_counts(const ModelConfig& c) { return arch_of(c).param_counts(c); }

}  // namespace moe
