// The MLP of a dense layer or of an expert: what the model config chooses and the MoE
// block computes.
#pragma once

namespace moe {

enum class MlpKind { Gelu, SwiGLU, Relu, GeGLU };  // Relu, GeGLU: T5's "relu", "gated-gelu"

}  // namespace moe
