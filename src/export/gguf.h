// GGUF v3 output (the file format of llama.cpp / ggml), streamed: metadata and
// tensor descriptions are declared first, each tensor with a producer, then the file
// is written tensor by tensor, so a model's bytes are never in memory together.
// Layout: "GGUF", version 3, tensor count, metadata count, the metadata (key, type,
// value), the tensor infos (name, dims innermost first, ggml type, offset), padding
// to the alignment (32), then each tensor's bytes, each padded to the alignment.
// Written atomically (AtomicFile: a temp file beside, renamed into place).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moe {

// ggml tensor types we write.
enum class GGType : uint32_t { F32 = 0, F16 = 1, BF16 = 30 };
size_t gg_type_size(GGType t);

class GgufWriter {
 public:
  // A producer emits the tensor's bytes in order, in as many pieces as it likes (a
  // stacked expert tensor: one expert at a time), exactly nbytes in all.
  using Emit = std::function<void(const void* data, size_t n)>;
  using Producer = std::function<void(const Emit& emit)>;
  static constexpr uint64_t kAlignment = 32;

  // Metadata, in the order given (keys must be unique).
  void kv_u32(const std::string& key, uint32_t v);
  void kv_i32(const std::string& key, int32_t v);
  void kv_f32(const std::string& key, float v);
  void kv_bool(const std::string& key, bool v);
  void kv_str(const std::string& key, const std::string& v);
  void kv_str_array(const std::string& key, const std::vector<std::string>& v);
  void kv_f32_array(const std::string& key, const std::vector<float>& v);
  void kv_i32_array(const std::string& key, const std::vector<int32_t>& v);

  // A tensor of ggml dims `ne` (innermost first: a row-major [rows, cols] matrix is
  // ne = {cols, rows}) in type t.
  void add(const std::string& name, const std::vector<uint64_t>& ne, GGType t, Producer produce);

  uint64_t tensor_bytes() const;  // tensor data, padding excluded
  size_t tensors() const { return tensors_.size(); }

  // Writes the whole file at `path` (temp beside, then renamed into place). I/O errors
  // are one line naming the file; a producer's exception passes through (the temp file
  // is removed either way).
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    GGType type;
    uint64_t nbytes;
    Producer produce;
  };
  void key(const std::string& k, uint32_t type);
  std::string meta_;  // the encoded metadata pairs
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace moe
