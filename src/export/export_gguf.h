// moe export --format gguf: a checkpoint as one GGUF v3 file that llama.cpp runs.
//   llama (dense)                  -> arch "llama"
//   mixtral (MoE, renormalised top-k) -> arch "llama" with expert_count / expert_used_count
//     and stacked expert tensors; MoE in only some layers (the upcycling default): the
//     dense layers are written as MoE layers whose E experts all equal the dense MLP and
//     whose router is zero (uniform gates, renormalised: the dense output again)
//   gpt2 (dense)                   -> arch "gpt2"
// Refused, one line saying why: GPT-2 MoE and Switch's raw (not renormalised) gates
// (no llama.cpp equivalent), a missing or unsuitable tokenizer.model (llama.cpp's
// SentencePiece tokenizer needs BPE, byte fallback, no normalisation), any tensor that
// is absent, misshapen or not finite. The vocabulary (pieces, scores, types, special
// ids, the dummy-prefix setting) comes from tokenizer.model; weight matrices are
// written in the requested dtype, norms, biases and routers in F32. Streams tensor by
// tensor from the mapped checkpoint (memory: about one stacked expert tensor) into a
// temp file beside the output, renamed into place when complete.
#pragma once
#include <string>
#include <vector>

#include "export/gguf.h"
#include "io/safetensors.h"

namespace moe {

struct GgufExportResult {
  std::string dir;   // the model directory read
  std::string arch;  // "llama" | "gpt2"
  size_t tensors = 0;
  uint64_t bytes_in = 0;   // the checkpoint's tensor data
  uint64_t bytes_out = 0;  // the GGUF's tensor data
  std::vector<std::string> notes;  // what differs from the checkpoint, for the user
};

// block_floats: how many float32 values a tensor is read and converted in at a time
// (the default, 4M, is 16 MB; tests make it small to cross block boundaries).
// dtype: the weight matrices' type, F32, F16 or BF16.
GgufExportResult export_gguf(const std::string& model, const std::string& out, STDType dtype, bool force,
                             size_t block_floats = size_t(4) << 20);

}  // namespace moe
