// Token shards: round trips (2- and 4-byte tokens) and one test per kind of bad file,
// each checking that the one-line error names the file and what was expected.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "data/shard.h"
#include "data_util.h"
#include "testutil.h"

namespace moe {
namespace {

// A shard file written by hand: header fields as given, then `tokens` as u16 or u32.
std::string raw_shard(const char* magic, uint32_t version, uint32_t width, uint64_t count, uint64_t vocab,
                      const std::vector<uint32_t>& tokens) {
  std::string s(32, '\0');
  std::memcpy(s.data(), magic, 8);
  std::memcpy(s.data() + 8, &version, 4);
  std::memcpy(s.data() + 12, &width, 4);
  std::memcpy(s.data() + 16, &count, 8);
  std::memcpy(s.data() + 24, &vocab, 8);
  for (uint32_t t : tokens) {
    if (width == 2) {
      uint16_t v = uint16_t(t);
      s.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      s.append(reinterpret_cast<const char*>(&t), 4);
    }
  }
  return s;
}

TEST(Shard, RoundTripU16) {
  test::DataTempDir dir("shard_u16");
  const std::vector<int32_t> tok = test::randint(1001, 65536, 1);
  shard_write(dir / "a.bin", tok.data(), tok.size(), 65536);
  // The bytes are exactly the documented layout.
  EXPECT_EQ(test::read_bytes(dir / "a.bin"),
            raw_shard(kShardMagic, 1, 2, 1001, 65536, std::vector<uint32_t>(tok.begin(), tok.end())));
  TokenShard s = TokenShard::open(dir / "a.bin", 65536);
  EXPECT_EQ(s.size(), 1001u);
  EXPECT_EQ(s.width(), 2u);
  EXPECT_EQ(s.vocab_size(), 65536u);
  s.check_tokens();
  std::vector<int32_t> back(tok.size());
  s.read(0, tok.size(), back.data());
  EXPECT_EQ(back, tok);
  std::vector<int32_t> mid(10);
  s.read(500, 10, mid.data());
  EXPECT_EQ(mid, std::vector<int32_t>(tok.begin() + 500, tok.begin() + 510));
  EXPECT_EQ(s.at(1000), uint32_t(tok[1000]));
}

TEST(Shard, RoundTripU32AndEmpty) {
  test::DataTempDir dir("shard_u32");
  const std::vector<int32_t> tok = test::randint(777, 100000, 2);
  shard_write(dir / "b.bin", tok.data(), tok.size(), 100000);
  TokenShard s = TokenShard::open(dir / "b.bin");
  EXPECT_EQ(s.width(), 4u);
  s.check_tokens();
  std::vector<int32_t> back(tok.size());
  s.read(0, tok.size(), back.data());
  EXPECT_EQ(back, tok);
  // Moving keeps the mapping valid.
  TokenShard moved = std::move(s);
  EXPECT_EQ(moved.at(3), uint32_t(tok[3]));

  shard_write(dir / "empty.bin", nullptr, 0, 10);
  EXPECT_EQ(TokenShard::open(dir / "empty.bin").size(), 0u);
}

TEST(Shard, WriterRejectsTokenOutsideVocabAndWritesNothing) {
  test::DataTempDir dir("shard_w");
  std::vector<int32_t> tok = {1, 2, 10};
  test::expect_error([&] { shard_write(dir / "w.bin", tok.data(), tok.size(), 10); }, {"w.bin", "token 2", "10"});
  tok[2] = -1;
  test::expect_error([&] { shard_write(dir / "w.bin", tok.data(), tok.size(), 10); }, {"w.bin", "-1"});
  EXPECT_FALSE(std::filesystem::exists(dir / "w.bin"));
  test::expect_error([&] { shard_write(dir / "w.bin", tok.data(), 0, 0); }, {"w.bin", "vocabulary size 0"});
}

TEST(ShardBad, MissingFile) { test::expect_error([] { TokenShard::open("/nonexistent/x.bin"); }, {"/nonexistent/x.bin"}); }

TEST(ShardBad, ShortFile) {
  test::DataTempDir dir("bad_short");
  test::write_bytes(dir / "s.bin", "MOETOKS");
  test::expect_error([&] { TokenShard::open(dir / "s.bin"); }, {"s.bin", "7 bytes", "32-byte header"});
}

TEST(ShardBad, BadMagic) {
  test::DataTempDir dir("bad_magic");
  test::write_bytes(dir / "m.bin", raw_shard("NOTTOKS", 1, 2, 2, 10, {1, 2}));
  test::expect_error([&] { TokenShard::open(dir / "m.bin"); }, {"m.bin", "magic"});
}

TEST(ShardBad, WrongVersion) {
  test::DataTempDir dir("bad_version");
  test::write_bytes(dir / "v.bin", raw_shard(kShardMagic, 2, 2, 2, 10, {1, 2}));
  test::expect_error([&] { TokenShard::open(dir / "v.bin"); }, {"v.bin", "version 2", "expected 1"});
}

TEST(ShardBad, WrongWidth) {
  test::DataTempDir dir("bad_width");
  test::write_bytes(dir / "w.bin", raw_shard(kShardMagic, 1, 3, 0, 10, {}));
  test::expect_error([&] { TokenShard::open(dir / "w.bin"); }, {"w.bin", "bytes per token 3", "2 or 4"});
  test::write_bytes(dir / "w2.bin", raw_shard(kShardMagic, 1, 2, 0, 70000, {}));
  test::expect_error([&] { TokenShard::open(dir / "w2.bin"); }, {"w2.bin", "70000", "2-byte"});
}

TEST(ShardBad, CountLargerThanFile) {
  test::DataTempDir dir("bad_count");
  test::write_bytes(dir / "c.bin", raw_shard(kShardMagic, 1, 2, 5, 10, {1, 2, 3, 4}));
  test::expect_error([&] { TokenShard::open(dir / "c.bin"); }, {"c.bin", "5 tokens", "8 bytes after the header"});
  // A count so large that count * width overflows.
  test::write_bytes(dir / "c2.bin", raw_shard(kShardMagic, 1, 4, uint64_t(1) << 62, 10, {1}));
  test::expect_error([&] { TokenShard::open(dir / "c2.bin"); }, {"c2.bin", "more than fit"});
}

TEST(ShardBad, TrailingBytes) {
  test::DataTempDir dir("bad_trailing");
  test::write_bytes(dir / "t.bin", raw_shard(kShardMagic, 1, 2, 3, 10, {1, 2, 3, 4}));
  test::expect_error([&] { TokenShard::open(dir / "t.bin"); }, {"t.bin", "3 tokens", "6 bytes", "8 bytes after"});
}

TEST(ShardBad, VocabMismatchAndZero) {
  test::DataTempDir dir("bad_vocab");
  test::write_bytes(dir / "v.bin", raw_shard(kShardMagic, 1, 2, 2, 10, {1, 2}));
  test::expect_error([&] { TokenShard::open(dir / "v.bin", 12); }, {"v.bin", "vocabulary size 10", "expected 12"});
  test::write_bytes(dir / "z.bin", raw_shard(kShardMagic, 1, 2, 0, 0, {}));
  test::expect_error([&] { TokenShard::open(dir / "z.bin"); }, {"z.bin", "vocabulary size 0"});
}

TEST(ShardBad, TokenNotBelowVocab) {
  test::DataTempDir dir("bad_token");
  std::vector<uint32_t> tok(100000, 3);
  tok[77777] = 10;  // == vocab
  test::write_bytes(dir / "t.bin", raw_shard(kShardMagic, 1, 2, tok.size(), 10, tok));
  TokenShard s = TokenShard::open(dir / "t.bin");  // the header is fine
  test::expect_error([&] { s.check_tokens(); }, {"t.bin", "token 77777 is 10", "< vocabulary size 10"});
  tok[77777] = 0xFFFFFFFFu;
  test::write_bytes(dir / "t4.bin", raw_shard(kShardMagic, 1, 4, tok.size(), 70000, tok));
  TokenShard s4 = TokenShard::open(dir / "t4.bin");
  test::expect_error([&] { s4.check_tokens(); }, {"t4.bin", "token 77777 is 4294967295"});
}

TEST(ShardBad, ReadOutsideRange) {
  test::DataTempDir dir("bad_read");
  std::vector<int32_t> tok = {1, 2, 3};
  shard_write(dir / "r.bin", tok.data(), tok.size(), 10);
  TokenShard s = TokenShard::open(dir / "r.bin");
  std::vector<int32_t> out(4);
  test::expect_error([&] { s.read(1, 3, out.data()); }, {"r.bin", "[1, 4)", "3 tokens"});
}

}  // namespace
}  // namespace moe
