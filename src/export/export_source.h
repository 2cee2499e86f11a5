// The checkpoint an export reads: its config and every tensor config.json's model
// needs, each checked (present, its HF shape, F32/BF16/F16, finite) before anything is
// written, in the order of our layout (experts one by one).
#pragma once
#include <string>
#include <vector>

#include "io/st_dir.h"
#include "model/config.h"
#include "model/family.h"

namespace moe {

struct SourceTensor {
  std::string name;               // the HF name ("...experts.3.w1.weight")
  std::vector<int64_t> hf_shape;  // as HF stores it
  std::vector<int64_t> shape;     // ours: every linear weight [out, in]
  bool transposed = false;        // HF stores it [in, out]
  Role role;
  int layer = -1;                 // -1: model-wide
  int expert = -1;                // -1: not an expert's
};

struct ExportSource {
  std::string dir;  // the model directory (a run directory's newest checkpoint)
  ModelConfig cfg;
  TensorDir src;
  std::vector<SourceTensor> tensors;
  uint64_t bytes = 0;  // their data, as stored

  // The tensor of (role, layer, expert), or nullptr (e.g. LMHead of a tied model).
  const SourceTensor* find(Role role, int layer = -1, int expert = -1) const;
  // Its values in our layout (float32, [out, in]); pages released after the read.
  std::vector<float> read(const SourceTensor& t) const;
  // Rows [row, row + n) of a tensor HF stores as we do (not transposed), into out
  // (n x the row's elements); its mapped pages are released after the read.
  void read_rows(const SourceTensor& t, int64_t row, int64_t n, float* out) const;
};

// Throws one line naming the file and tensor on the first problem.
ExportSource export_source_open(const std::string& model);

}  // namespace moe
