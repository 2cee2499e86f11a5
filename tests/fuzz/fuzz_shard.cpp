// libFuzzer: TokenShard::open (magic, version, width, count, vocab against the file
// size) on arbitrary bytes, then check_tokens and reads of what it accepted.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "data/shard.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = moe::fuzz::temp_path("train.tok");
  moe::fuzz::write_file(path, data, size);
  moe::fuzz::tolerate_bad_input([&] {
    moe::TokenShard s = moe::TokenShard::open(path);
    (void)moe::TokenShard::open(path, s.vocab_size());
    const uint64_t n = std::min<uint64_t>(s.size(), 4096);
    std::vector<int32_t> out(n);
    s.read(0, n, out.data());
    s.read(s.size() - n, n, out.data());
    s.check_tokens();  // throws on a token >= vocab
    for (uint64_t i = 0; i < n; i++)
      if (s.at(i) >= s.vocab_size()) __builtin_trap();  // check_tokens passed
    // Out-of-range reads must throw, never read.
    try {
      s.read(s.size(), 1, out.data());
      __builtin_trap();
    } catch (const std::runtime_error&) {
    }
  });
  return 0;
}
