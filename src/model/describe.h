// What moe train and moe inspect print about a config: the decoder wording, changed by
// the family's describe hook where its shape differs (model/arch.h).
#pragma once
#include "model/arch.h"

namespace moe {

ConfigText describe_config(const ModelConfig& c, double params);

}  // namespace moe
