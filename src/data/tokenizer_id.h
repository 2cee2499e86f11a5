// A tokenizer's identity: the SHA-256 of its tokenizer.model bytes. A dataset records
// it in meta.json (tokenizer.sha256) and a checkpoint carries the file itself, so a
// model and a dataset (or a --tokenizer given to generate) can be checked to agree:
// token ids from another tokenizer mean other text, and a model evaluated or trained
// on them learns or reports nonsense without any error.
#pragma once
#include <string>

namespace moe {

// SHA-256 (hex) of the file's bytes; "" when the file does not exist.
std::string tokenizer_id(const std::string& tokenizer_path);

// Checks that the checkpoint in `model_dir` was made with the tokenizer whose id is
// `want_id` (described as `what`, e.g. "dataset data/x"). Throws a one-line
// std::runtime_error naming both files, the remedy and `override_flag` when they
// differ. Returns false (nothing checked) when the checkpoint has no tokenizer.model.
bool tokenizer_check(const std::string& model_dir, const std::string& want_id, const std::string& what,
                     const std::string& remedy, const std::string& override_flag);

}  // namespace moe
