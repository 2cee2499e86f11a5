// SHA-256 against the FIPS 180-2 / NIST test vectors, fed whole and in odd pieces.
#include <gtest/gtest.h>

#include <string>

#include "data/sha256.h"
#include "data_util.h"

namespace moe {
namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

// One million 'a', in pieces of sizes that straddle the 64-byte block boundary.
TEST(Sha256, MillionAInPieces) {
  const std::string a(1000000, 'a');
  Sha256 h;
  size_t off = 0, step = 1;
  while (off < a.size()) {
    size_t n = std::min(step, a.size() - off);
    h.update(a.data() + off, n);
    off += n;
    step = step * 7 % 131 + 1;
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex(a), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileMatchesBytesAndMissingFileNamesIt) {
  test::DataTempDir dir("sha");
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = char(i * 31 + 7);
  test::write_bytes(dir / "f.bin", bytes);
  EXPECT_EQ(sha256_file_hex(dir / "f.bin"), sha256_hex(bytes));
  test::expect_error([&] { sha256_file_hex(dir / "absent"); }, {"absent"});
}

}  // namespace
}  // namespace moe
