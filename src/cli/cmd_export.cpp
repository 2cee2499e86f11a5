// moe export: a checkpoint in another format or dtype (today: safetensors in bf16 or
// f16, a smaller Hugging Face directory for sharing; src/export/).
#include <chrono>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/model_open.h"
#include "export/export_st.h"
#include "model/checkpoint.h"
#include "model/memory.h"

namespace moe::cli {

namespace {

struct ExportOpts {
  std::string model, out, format = "safetensors", dtype = "bf16";
  bool force = false;
};

void run_export(const ExportOpts& o) {
  const STDType dt = o.dtype == "f32" ? STDType::F32 : o.dtype == "bf16" ? STDType::BF16 : STDType::F16;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = resolve_model_dir(o.model);
  check_model_tokenizer(dir, config_load(dir + "/config.json").vocab_size);  // before anything is written
  const ExportResult r = export_safetensors(dir, o.out, dt, o.force);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s -> %s: %zu tensors, %s -> %s (%s), %.1f s\n", r.dir.c_str(), o.out.c_str(), r.tensors,
              bytes_human(double(r.bytes_in)).c_str(), bytes_human(double(r.bytes_out)).c_str(), o.dtype.c_str(), s);
}

}  // namespace

void register_export(CLI::App& app) {
  auto o = std::make_shared<ExportOpts>();
  CLI::App* sub = app.add_subcommand("export", "Write a checkpoint in another dtype (safetensors: bf16 or f16 for sharing)");
  sub->add_option("--model", o->model, "checkpoint directory (or a run directory: its newest checkpoint)")->required();
  sub->add_option("--out", o->out, "the directory to write (written beside, then moved into place)")->required();
  sub->add_option("--format", o->format, "safetensors (a Hugging Face directory)")
      ->check(CLI::IsMember({"safetensors"}));
  sub->add_option("--dtype", o->dtype, "f32 | bf16 | f16 (default bf16)")->check(CLI::IsMember({"f32", "bf16", "f16"}));
  sub->add_flag("--force", o->force, "replace --out if it exists");
  sub->callback([o] { run_export(*o); });
}

}  // namespace moe::cli
