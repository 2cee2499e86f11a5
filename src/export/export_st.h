// moe export --format safetensors: a model directory rewritten with its weights in
// another dtype (bf16 or f16 for sharing: training checkpoints are always f32), as a
// Hugging Face directory of the same names and layouts. Streams tensor by tensor from
// the mapped input (constant memory whatever the model's size) into a temp directory
// beside the output, moved into place when complete.
#pragma once
#include <string>

#include "io/safetensors.h"

namespace moe {

struct ExportResult {
  std::string dir;            // the model directory read (a run directory's newest checkpoint)
  size_t tensors = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data
};

// Every tensor config.json's model needs must be present with its shape, in F32, BF16 or
// F16, and finite; anything else is refused with one line before anything is written.
// The tokenizer and the Hugging Face side files (generation and tokenizer configs, the
// model card) are copied; config.json gets the new torch_dtype. `out` must not exist
// unless `force` (then it is replaced).
ExportResult export_safetensors(const std::string& model, const std::string& out, STDType dtype, bool force);

}  // namespace moe
