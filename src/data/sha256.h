// SHA-256 (FIPS 180-4): the fingerprints of corpus sources, the tokenizer file and
// the inputs+options of `moe data` recorded in meta.json. Streaming and one-shot.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::array<uint8_t, 32> digest();  // finishes; the object must not be updated afterwards
  std::string hex();                 // digest() as 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes
};

std::string sha256_hex(std::string_view data);
// The hash of a whole file (read in chunks). Throws naming the file when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace moe
