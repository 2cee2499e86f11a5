// libFuzzer: SafeTensorsFile::open (header length, JSON, dtypes, shapes, offsets,
// overlaps) on arbitrary bytes, then every accessor on what it accepted.
#include <stdexcept>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = moe::fuzz::temp_path("model.safetensors");
  moe::fuzz::write_file(path, data, size);
  moe::fuzz::tolerate_bad_input([&] {
    moe::SafeTensorsFile f = moe::SafeTensorsFile::open(path);
    for (const moe::STEntry& e : f.tensors()) {
      if (f.find(e.name) != &e) __builtin_trap();  // the index must point at the entry
      (void)f.at(e.name);
      switch (e.dtype) {
        case moe::STDType::F32:
        case moe::STDType::BF16:
        case moe::STDType::F16: {
          std::vector<float> v = f.read_f32(e);
          if (v.size() != size_t(e.numel())) __builtin_trap();
          break;
        }
        case moe::STDType::I32:
        case moe::STDType::I64:
          (void)f.read_i32(e);
          break;
        default: {
          // Touch every byte of the range the header claims.
          const auto* p = static_cast<const unsigned char*>(f.data(e));
          unsigned sum = 0;
          for (uint64_t i = 0; i < e.nbytes; i++) sum += p[i];
          (void)sum;
        }
      }
      f.prefetch(e);
      f.release(e);
    }
    for (const auto& [k, v] : f.metadata()) (void)k.size(), (void)v.size();
  });
  return 0;
}
