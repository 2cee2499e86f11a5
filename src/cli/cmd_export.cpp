// moe export: a checkpoint in another format or dtype: safetensors in bf16 or f16 (a
// smaller Hugging Face directory for sharing) or one GGUF file for llama.cpp (src/export/).
#include <chrono>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/model_open.h"
#include "export/export_gguf.h"
#include "export/export_st.h"
#include "model/checkpoint.h"
#include "model/memory.h"

namespace moe::cli {

namespace {

struct ExportOpts {
  std::string model, out, format = "safetensors", dtype;  // dtype default: bf16 (safetensors), f16 (gguf)
  bool force = false;
};

void run_export(const ExportOpts& o) {
  const bool gguf = o.format == "gguf";
  const std::string dtype = !o.dtype.empty() ? o.dtype : gguf ? "f16" : "bf16";
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = resolve_model_dir(o.model);
  model_check_tokenizer(dir, config_load(dir + "/config.json").vocab_size);  // before anything is written
  const STDType t = dtype == "f32" ? STDType::F32 : dtype == "bf16" ? STDType::BF16 : STDType::F16;
  size_t tensors = 0;
  uint64_t in = 0, out = 0;
  std::string what = dtype;
  if (gguf) {
    const GgufExportResult r = export_gguf(dir, o.out, t, o.force);
    for (const std::string& n : r.notes) std::printf("note: %s\n", n.c_str());
    tensors = r.tensors, in = r.bytes_in, out = r.bytes_out;
    what = "GGUF, arch " + r.arch + ", " + dtype;
  } else {
    const ExportResult r = export_safetensors(dir, o.out, t, o.force);
    tensors = r.tensors, in = r.bytes_in, out = r.bytes_out;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s -> %s: %zu tensors, %s -> %s (%s), %.1f s\n", dir.c_str(), o.out.c_str(), tensors,
              bytes_human(double(in)).c_str(), bytes_human(double(out)).c_str(), what.c_str(), s);
}

}  // namespace

void register_export(CLI::App& app) {
  auto o = std::make_shared<ExportOpts>();
  CLI::App* sub = app.add_subcommand(
      "export", "Write a checkpoint in another format or dtype: safetensors (bf16/f16 for sharing) or GGUF for llama.cpp");
  sub->add_option("--model", o->model, "checkpoint directory (or a run directory: its newest checkpoint)")->required();
  sub->add_option("--out", o->out,
                  "safetensors: the directory to write; gguf: the .gguf file (either written beside, then moved into place)")
      ->required();
  sub->add_option("--format", o->format, "safetensors (a Hugging Face directory) | gguf (one file for llama.cpp)")
      ->check(CLI::IsMember({"safetensors", "gguf"}));
  sub->add_option("--dtype", o->dtype, "f32 | bf16 | f16 (default: bf16 for safetensors, f16 for gguf)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  sub->add_flag("--force", o->force, "replace --out if it exists");
  sub->callback([o] { run_export(*o); });
}

}  // namespace moe::cli
