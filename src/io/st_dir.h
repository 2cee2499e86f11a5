// The tensors of a Hugging Face model directory: one model.safetensors, or a
// model.safetensors.index.json whose weight_map names the shard file of each tensor.
// Every file is memory-mapped and validated on open; the index and the shards must
// agree exactly (each tensor in the file the index names, nothing unlisted).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace moe {

class TensorDir {
 public:
  static TensorDir open(const std::string& dir);  // throws one line naming the file

  const std::string& dir() const { return dir_; }
  // The index path when sharded, else the single file's path (for error messages).
  const std::string& source() const { return source_; }
  const STEntry* find(const std::string& name) const;  // nullptr when absent
  // The tensor, or throws "<source>: missing tensor '<name>' (<why>)".
  const STEntry& at(const std::string& name, const std::string& why) const;
  const SafeTensorsFile& file_of(const std::string& name) const;  // name must exist
  // Every tensor name, sorted.
  std::vector<std::string> names() const;

 private:
  std::string dir_, source_;
  std::vector<SafeTensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor -> file index
};

}  // namespace moe
