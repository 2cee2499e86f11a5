#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "io/files.h"

namespace moe {

static_assert(std::endian::native == std::endian::little, "shards are little-endian; so is this code");

uint32_t shard_width_for_vocab(uint64_t vocab) { return vocab <= 65536 ? 2 : 4; }

void shard_write(const std::string& path, const int32_t* tokens, size_t n, uint64_t vocab) {
  auto fail = [&](const std::string& what) { throw std::runtime_error("token shard: " + path + ": " + what); };
  if (vocab == 0 || vocab > kShardMaxVocab)
    fail("vocabulary size " + std::to_string(vocab) + " is outside [1, " + std::to_string(kShardMaxVocab) + "]");
  const uint32_t width = shard_width_for_vocab(vocab);
  std::string buf(kShardHeaderBytes + n * width, '\0');
  auto* p = reinterpret_cast<unsigned char*>(buf.data());
  std::memcpy(p, kShardMagic, 8);
  const uint32_t version = kShardVersion;
  const uint64_t count = n;
  std::memcpy(p + 8, &version, 4);
  std::memcpy(p + 12, &width, 4);
  std::memcpy(p + 16, &count, 8);
  std::memcpy(p + 24, &vocab, 8);
  unsigned char* t = p + kShardHeaderBytes;
  for (size_t i = 0; i < n; i++) {
    if (tokens[i] < 0 || uint64_t(tokens[i]) >= vocab)
      fail("token " + std::to_string(i) + " is " + std::to_string(tokens[i]) + ", expected 0 <= token < vocab " +
           std::to_string(vocab));
    if (width == 2) {
      uint16_t v = uint16_t(tokens[i]);
      std::memcpy(t + 2 * i, &v, 2);
    } else {
      uint32_t v = uint32_t(tokens[i]);
      std::memcpy(t + 4 * i, &v, 4);
    }
  }
  file_write_atomic(path, buf);
}

// ---------------------------------------------------------------- reader

void TokenShard::fail(const std::string& what) const { throw std::runtime_error("token shard: " + path_ + ": " + what); }

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), map_size_);
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    tokens_ = std::exchange(o.tokens_, nullptr);
    count_ = std::exchange(o.count_, 0);
    vocab_ = std::exchange(o.vocab_, 0);
    width_ = std::exchange(o.width_, 0);
  }
  return *this;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_size_);
}

TokenShard TokenShard::open(const std::string& path, uint64_t expected_vocab) {
  TokenShard s;
  s.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block us: refused below
  if (fd < 0) s.fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    s.fail(std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    s.fail("not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < kShardHeaderBytes) {
    ::close(fd);
    s.fail("file is " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kShardHeaderBytes) +
           "-byte header");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) s.fail(std::string("cannot mmap: ") + std::strerror(err));
  s.map_ = static_cast<const unsigned char*>(p);
  s.map_size_ = size;  // from here on the destructor unmaps, also when we throw

  if (std::memcmp(s.map_, kShardMagic, 8) != 0) s.fail("bad magic: not a token shard (expected \"MOETOKS\\0\")");
  uint32_t version, width;
  uint64_t count, vocab;
  std::memcpy(&version, s.map_ + 8, 4);
  std::memcpy(&width, s.map_ + 12, 4);
  std::memcpy(&count, s.map_ + 16, 8);
  std::memcpy(&vocab, s.map_ + 24, 8);
  if (version != kShardVersion)
    s.fail("version " + std::to_string(version) + ", expected " + std::to_string(kShardVersion));
  if (width != 2 && width != 4) s.fail("bytes per token " + std::to_string(width) + ", expected 2 or 4");
  if (vocab == 0 || vocab > kShardMaxVocab)
    s.fail("vocabulary size " + std::to_string(vocab) + ", expected 1 .. " + std::to_string(kShardMaxVocab));
  if (width == 2 && vocab > 65536)
    s.fail("vocabulary size " + std::to_string(vocab) + " does not fit 2-byte tokens");
  if (expected_vocab > 0 && vocab != expected_vocab)
    s.fail("vocabulary size " + std::to_string(vocab) + ", expected " + std::to_string(expected_vocab) +
           " (the tokenizer's)");
  const uint64_t data = size - kShardHeaderBytes;
  if (count > data / width || count * width != data)
    s.fail("header says " + std::to_string(count) + " tokens of " + std::to_string(width) + " bytes (" +
           (count > data / width ? std::string("more than fit") : std::to_string(count * width) + " bytes") +
           ") but the file has " + std::to_string(data) + " bytes after the header");
  s.tokens_ = s.map_ + kShardHeaderBytes;
  s.count_ = count;
  s.vocab_ = vocab;
  s.width_ = width;
  return s;
}

uint32_t TokenShard::at(uint64_t i) const {
  assert(i < count_);
  if (width_ == 2) {
    uint16_t v;
    std::memcpy(&v, tokens_ + 2 * i, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + 4 * i, 4);
  return v;
}

// The largest token of [b, e): a loop the compiler vectorises.
uint32_t TokenShard::max_in(uint64_t b, uint64_t e) const {
  uint32_t mx = 0;
  if (width_ == 2) {
    for (uint64_t i = b; i < e; i++) {
      uint16_t v;
      std::memcpy(&v, tokens_ + 2 * i, 2);
      mx = std::max<uint32_t>(mx, v);
    }
  } else {
    for (uint64_t i = b; i < e; i++) {
      uint32_t v;
      std::memcpy(&v, tokens_ + 4 * i, 4);
      mx = std::max(mx, v);
    }
  }
  return mx;
}

uint32_t TokenShard::max_token() const { return max_in(0, count_); }

void TokenShard::check_tokens() const {
  // Max per chunk first, then locate the culprit.
  const uint64_t chunk = 1 << 16;
  for (uint64_t b = 0; b < count_; b += chunk) {
    const uint64_t e = std::min(count_, b + chunk);
    if (max_in(b, e) < vocab_) continue;
    for (uint64_t i = b; i < e; i++)
      if (at(i) >= vocab_)
        fail("token " + std::to_string(i) + " is " + std::to_string(at(i)) + ", expected < vocabulary size " +
             std::to_string(vocab_));
  }
}

void TokenShard::read(uint64_t begin, uint64_t n, int32_t* out) const {
  if (begin > count_ || n > count_ - begin)
    fail("read of tokens [" + std::to_string(begin) + ", " + std::to_string(begin + n) + ") outside the " +
         std::to_string(count_) + " tokens");
  if (width_ == 2) {
    const unsigned char* p = tokens_ + 2 * begin;
    for (uint64_t i = 0; i < n; i++) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = int32_t(v);
    }
  } else {
    if (n) std::memcpy(out, tokens_ + 4 * begin, n * 4);  // n == 0: out may be null; < kShardMaxVocab: check_tokens
  }
}

}  // namespace moe
