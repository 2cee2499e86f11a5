// Token shards: the tokenized corpus as one flat stream, memory-mapped for training.
//
// Format (all little-endian), a 32-byte header then the tokens:
//   0  char[8] magic     "MOETOKS\0"
//   8  u32     version   1
//  12  u32     width     bytes per token: 2 (uint16, when vocab <= 65536) or 4 (uint32)
//  16  u64     count     number of tokens
//  24  u64     vocab     vocabulary size; every token must be < vocab
//  32  count * width bytes of tokens; the file ends there.
//
// Every error is a std::runtime_error with one line naming the file and what was expected.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moe {

inline constexpr char kShardMagic[8] = {'M', 'O', 'E', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 32;
// Token ids are copied into int32, so a vocabulary may not exceed this.
inline constexpr uint64_t kShardMaxVocab = uint64_t(INT32_MAX) + 1;

// Bytes per token the writer chooses for a vocabulary: 2 up to 65536, else 4.
uint32_t shard_width_for_vocab(uint64_t vocab);

// Writes tokens[0 .. n) atomically (temp file, fsync, rename). Throws, naming `path`,
// when vocab is 0 or too large or a token is negative or >= vocab (nothing written).
void shard_write(const std::string& path, const int32_t* tokens, size_t n, uint64_t vocab);

class TokenShard {
 public:
  // Maps `path` read-only and validates the header against the file size. When
  // expected_vocab > 0 the header's vocabulary must equal it. Tokens themselves are
  // checked by check_tokens() (one pass over the file).
  static TokenShard open(const std::string& path, uint64_t expected_vocab = 0);

  TokenShard() = default;
  TokenShard(TokenShard&& o) noexcept;
  TokenShard& operator=(TokenShard&& o) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  const std::string& path() const { return path_; }
  uint64_t size() const { return count_; }  // tokens
  uint64_t vocab_size() const { return vocab_; }
  uint32_t width() const { return width_; }  // bytes per token

  // Throws naming the file, the first bad index and its value when a token is >= vocab.
  void check_tokens() const;
  // The largest token of the shard (one vectorised pass; 0 when empty).
  uint32_t max_token() const;
  // Token i (i < size(); unchecked beyond a debug assert).
  uint32_t at(uint64_t i) const;
  // Copies tokens [begin, begin + n) into out as int32; throws when the range is outside.
  void read(uint64_t begin, uint64_t n, int32_t* out) const;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  uint32_t max_in(uint64_t b, uint64_t e) const;
  std::string path_;
  const unsigned char* map_ = nullptr;
  size_t map_size_ = 0;
  const unsigned char* tokens_ = nullptr;
  uint64_t count_ = 0;
  uint64_t vocab_ = 0;
  uint32_t width_ = 0;
};

}  // namespace moe
