#include "cli/model_open.h"

#include "data/tokenizer.h"
#include "io/files.h"
#include "model/checkpoint.h"

namespace moe::cli {

void check_model_tokenizer(const std::string& dir, int vocab_size) {
  const std::string tok = dir + "/tokenizer.model";
  if (path_exists(tok)) tokenizer_open_checked(tok, dir + "/config.json (vocab_size)", 1, vocab_size);
}

OpenedModel open_model(const std::string& path, ExpertSplit split) {
  OpenedModel o;
  o.dir = resolve_model_dir(path);
  o.model = model_load(o.dir, split);
  check_model_tokenizer(o.dir, o.model->config().vocab_size);
  return o;
}

}  // namespace moe::cli
