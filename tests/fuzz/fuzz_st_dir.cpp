// libFuzzer: TensorDir::open on a model directory whose model.safetensors.index.json
// is the input; the directory also holds two valid shards (a: x, y; b: z) written
// once, so the index can name real files, missing ones, or files it does not match.
#include <filesystem>
#include <stdexcept>

#include "fuzz_util.h"
#include "io/safetensors.h"
#include "io/st_dir.h"

namespace {
std::string make_dir() {
  std::string dir = moe::fuzz::temp_path("model");
  std::filesystem::create_directories(dir);
  float x[6] = {1, 2, 3, 4, 5, 6}, z[2] = {7, 8};
  moe::SafeTensorsWriter a;
  a.add_f32("x", {2, 3}, x);
  a.add_f32("y", {0}, nullptr);
  a.write(dir + "/a.safetensors");
  moe::SafeTensorsWriter b;
  b.add_f32("z", {2}, z);
  b.write(dir + "/b.safetensors");
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = make_dir();
  moe::fuzz::write_file(dir + "/model.safetensors.index.json", data, size);
  moe::fuzz::tolerate_bad_input([&] {
    moe::TensorDir d = moe::TensorDir::open(dir);
    for (const std::string& n : d.names()) {
      const moe::STEntry& e = d.at(n, "fuzz");
      if (d.find(n) != &e) __builtin_trap();
      const moe::SafeTensorsFile& f = d.file_of(n);
      if (f.find(n) != &e) __builtin_trap();
      (void)f.read_f32(e);
    }
  });
  return 0;
}
