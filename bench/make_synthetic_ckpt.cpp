// Writes a synthetic dense Llama checkpoint (random BF16 weights, HF layout, sharded
// at 2 GB) for the upcycling benchmark (bench/upcycle_bench.sh):
//   make_synthetic_ckpt OUT_DIR [hidden intermediate layers heads kv_heads vocab]
// Defaults: 2560 6912 24 20 20 32000, about 2.07B parameters = 4.1 GB.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/st_shards.h"
#include "model/checkpoint.h"
#include "model/decoder/model.h"
#include "tensor/dtype.h"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 8) {
    std::fprintf(stderr, "usage: make_synthetic_ckpt OUT_DIR [hidden intermediate layers heads kv_heads vocab]\n");
    return 2;
  }
  using namespace moe;
  ModelConfig c;
  c.family = "llama";
  c.n_embd = 2560, c.n_inner = 6912, c.n_layer = 24, c.n_head = 20, c.n_kv_head = 20, c.vocab_size = 32000;
  c.n_ctx = 2048;
  if (argc == 8) {
    c.n_embd = std::atoi(argv[2]), c.n_inner = std::atoi(argv[3]), c.n_layer = std::atoi(argv[4]);
    c.n_head = std::atoi(argv[5]), c.n_kv_head = std::atoi(argv[6]), c.vocab_size = std::atoi(argv[7]);
  }
  try {
    c.validate();
    const std::string dir = argv[1];
    make_dirs(dir);
    const ModelLayout ml = model_layout(c);
    ShardedWriter w("model", uint64_t(2) << 30);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (const ParamSpec& s : ml.layout.specs()) {
      const size_t n = size_t(s.shape.numel());
      const bool norm = s.shape.ndim == 1;
      w.add(s.name, STDType::BF16, std::vector<int64_t>(s.shape.dims.begin(), s.shape.dims.begin() + s.shape.ndim),
            [n, norm, &state](std::vector<char>& scratch) {
              scratch.resize(n * 2);
              bf16* p = reinterpret_cast<bf16*>(scratch.data());
              for (size_t i = 0; i < n; i++) {
                if (norm) {
                  p[i] = f32_to_bf16(1.0f);
                  continue;
                }
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
                // Sum of 4 uniforms: roughly normal, std 0.02.
                float u = 0;
                for (int k = 0; k < 4; k++) u += float((state >> (16 * k)) & 0xFFFF) / 65535.0f - 0.5f;
                p[i] = f32_to_bf16(u * 0.0346f);
              }
              return static_cast<const void*>(scratch.data());
            });
    }
    w.set_metadata("format", "pt");
    w.write(dir);
    nlohmann::json j = config_to_hf(c);
    j["torch_dtype"] = "bfloat16";
    file_write_atomic(dir + "/config.json", j.dump(2) + "\n");
    std::printf("%s: %.2fB parameters, %.2f GB BF16\n", dir.c_str(), double(ml.layout.num_params()) / 1e9,
                double(w.total_bytes()) / 1e9);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_synthetic_ckpt: %s\n", e.what());
    return 1;
  }
  return 0;
}
