#include "data/tokenizer_id.h"

#include <stdexcept>

#include "data/sha256.h"
#include "io/files.h"

namespace moe {

std::string tokenizer_id(const std::string& path) { return path_exists(path) ? sha256_file_hex(path) : ""; }

bool tokenizer_check(const std::string& model_dir, const std::string& want_id, const std::string& what,
                     const std::string& remedy, const std::string& override_flag) {
  const std::string mine = model_dir + "/tokenizer.model";
  const std::string have = tokenizer_id(mine);
  if (have.empty()) return false;
  if (have != want_id)
    throw std::runtime_error(mine + " (sha256 " + have.substr(0, 12) + ") is not the tokenizer of " + what +
                             " (sha256 " + want_id.substr(0, 12) + "): token ids would mean other text; " + remedy +
                             ", or give " + override_flag + " to go ahead anyway");
  return true;
}

}  // namespace moe
