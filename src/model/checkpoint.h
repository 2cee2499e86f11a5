// A model checkpoint is a Hugging Face model directory: config.json (HF fields) and
// model.safetensors (HF tensor names and layouts), or a sharded
// model.safetensors.index.json with its shard files. Loading validates every
// tensor against config.json: none missing, none extra, every shape as expected.
// The shared pieces: finding a model directory, reading one HF tensor, the tokenizer
// check. A family reads and writes its own (model/decoder/model_io.h, model/t5/t5.h).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace moe {

class TensorDir;
// out (cols, rows) = in (rows, cols)^T: HF's [in, out] weights (GPT-2's Conv1D) and ours.
void transpose_2d(float* out, const float* in, int64_t rows, int64_t cols);
// Reads HF tensor `name` of src into dst (float32, our shape `want`; HF-transposed
// when tr). Throws naming the file and tensor on absence (with `why`), a wrong shape
// or a dtype other than F32/BF16/F16.
void read_hf_tensor(const TensorDir& src, const std::string& name, std::vector<int64_t> want, bool tr, float* dst,
                    const std::string& why);
// A model directory as given, or, for a training run directory, its newest
// complete checkpoint-N. Throws naming the path when there is neither, and when the
// directory given is itself an incomplete checkpoint.
std::string resolve_model_dir(const std::string& path);

// The tokenizer.model beside a model's config.json, when there is one, loaded and
// checked against its vocabulary (throws naming the file).
void model_check_tokenizer(const std::string& dir, int vocab_size);

// N for a directory name "checkpoint-N" (digits only), else -1.
long checkpoint_dir_step(const std::string& name);
// The first file a complete checkpoint needs that `dir` lacks, or "" when complete.
// Every model directory needs config.json and its weights; a training checkpoint
// (a checkpoint-N directory) also optimizer.safetensors and
// trainer_state.json.
std::string checkpoint_missing(const std::string& dir);

}  // namespace moe
