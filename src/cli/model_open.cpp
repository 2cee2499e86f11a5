#include "cli/model_open.h"

#include "cli/cli_util.h"
#include "data/tokenizer.h"
#include "dist/comm.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/t5.h"

namespace moe::cli {

void check_model_tokenizer(const std::string& dir, int vocab_size) {
  const std::string tok = dir + "/tokenizer.model";
  if (path_exists(tok)) tokenizer_open_checked(tok, dir + "/config.json (vocab_size)", 1, vocab_size);
}

std::unique_ptr<ExpertGroups> expert_groups_for(int EP) {
  const int ranks = launched_by_mpi() ? comm_world().size() : 1;
  if (EP < 1 || ranks % EP != 0)
    throw UsageError("--expert-parallel " + std::to_string(EP) + " must divide the " + std::to_string(ranks) +
                     (launched_by_mpi() ? " ranks" : " rank (start moe with mpirun -np P for more)"));
  return EP > 1 ? make_expert_groups(comm_world(), EP) : nullptr;
}

Model& OpenedModel::decoder_only(const std::string& command) const {
  if (auto* m = dynamic_cast<Model*>(model.get())) return *m;
  throw std::invalid_argument(dir + ": a " + model->config().family + " (encoder-decoder) model: " + command +
                              " takes decoder-only models (gpt2, llama, mixtral) so far");
}

OpenedModel open_model(const std::string& path, ExpertSplit split) {
  OpenedModel o;
  o.dir = resolve_model_dir(path);
  if (config_load(o.dir + "/config.json").encoder_decoder()) {
    if (split.partial()) throw std::invalid_argument(o.dir + ": --expert-parallel: not implemented for t5 models yet");
    o.model = t5_load(o.dir);
  } else {
    o.model = model_load(o.dir, split);
  }
  check_model_tokenizer(o.dir, o.model->config().vocab_size);
  return o;
}

}  // namespace moe::cli
