// Streaming, sharded safetensors output: the tensors (name, dtype, shape) are
// declared first with a producer each, then written one at a time, so the bytes of
// a model never need to be in memory together. Past `max_shard_bytes` the output is
// split HF-style: model-00001-of-0000N.safetensors ... plus model.safetensors.index.json
// ({"metadata": {"total_size"}, "weight_map"}); otherwise one model.safetensors.
// Files are written into an existing directory and fsynced; making the directory
// appear atomically is the caller's job (write into a temp dir, then dir_commit).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace moe {

class ShardedWriter {
 public:
  // Returns a pointer to the tensor's nbytes bytes: either into `scratch` (which the
  // producer may resize) or to memory that stays valid until the next producer call.
  using Producer = std::function<const void*(std::vector<char>& scratch)>;

  // base: "model" gives model.safetensors / model-0000i-of-0000n.safetensors.
  explicit ShardedWriter(std::string base = "model", uint64_t max_shard_bytes = uint64_t(5) << 30)
      : base_(std::move(base)), max_shard_(max_shard_bytes) {}

  void add(const std::string& name, STDType dtype, const std::vector<int64_t>& shape, Producer produce);
  // A tensor whose bytes are a range of another file, copied by the kernel
  // (copy_file_range, as cp does; read/write where unsupported).
  void add_copy(const std::string& name, STDType dtype, const std::vector<int64_t>& shape, const std::string& path,
                uint64_t offset);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  uint64_t total_bytes() const;  // tensor data, headers excluded

  // Writes every file into `dir`; after_each(i) runs once tensor i (declaration
  // order) is written. Throws one line naming the file (and tensor) on error.
  void write(const std::string& dir, const std::function<void(size_t)>& after_each = nullptr) const;

 private:
  struct Item {
    STEntry e;
    Producer produce;
    std::string copy_path;  // add_copy: the source file and offset
    uint64_t copy_offset = 0;
  };
  std::vector<std::vector<size_t>> shards() const;  // item indices per shard
  std::string shard_name(size_t i, size_t n) const;

  std::string base_;
  uint64_t max_shard_;
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moe
