#include "model/open.h"

#include "model/arch.h"
#include "model/checkpoint.h"

namespace moe {

OpenedModel open_model(const std::string& path, ExpertSplit split) {
  OpenedModel o;
  o.dir = resolve_model_dir(path);
  const ModelConfig c = config_load(o.dir + "/config.json");
  if (split.partial()) family_require(c, Capability::ExpertParallel, o.dir + ": --expert-parallel");
  o.model = arch_of(c).load(o.dir, BuildArgs{true, split});
  model_check_tokenizer(o.dir, o.model->config().vocab_size);
  return o;
}

}  // namespace moe
