// safetensors reader and writer: round trips, and one test per kind of bad file,
// each checking that the error names the file (and the tensor where there is one).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "testutil.h"

namespace fs = std::filesystem;

namespace moe {
namespace {

// One directory per process under the build tree, removed when the process exits.
struct TempDir {
  fs::path path = fs::path(MOE_TEST_BIN) / "tmp_safetensors" / std::to_string(::getpid());
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string temp_dir() {
  static TempDir dir;
  fs::create_directories(dir.path);
  return dir.path.string();
}

// Writes a raw file: the 8-byte length of `header` (or `len` when given), the header, then `data`.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data = "",
                      int64_t len = -1) {
  std::string path = temp_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary);
  uint64_t n = len < 0 ? header.size() : uint64_t(len);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << data;
  return path;
}

// Opens `path`, expects a runtime_error whose message contains every one of `needles`.
void expect_error(const std::string& path, const std::vector<std::string>& needles) {
  try {
    SafeTensorsFile::open(path);
    FAIL() << "opening " << path << " did not throw";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(SafeTensors, RoundTripF32Bf16I32WithMetadata) {
  std::vector<float> a = test::randn<float>(7 * 17, 1);
  std::vector<float> b_src = test::randn<float>(5, 2);
  std::vector<bf16> b(5);
  f32_to_bf16_ref(b.data(), b_src.data(), 5);
  std::vector<int32_t> c = {3, -1, 7, 2147483647, -2147483647 - 1, 0};
  float scalar = 2.5f;

  std::string path = temp_dir() + "/round.safetensors";
  SafeTensorsWriter w;
  w.add_f32("z.a", {7, 17}, a.data());
  w.add("b", STDType::BF16, {5}, b.data());
  w.add("c", STDType::I32, {2, 3}, c.data());
  w.add_f32("s", {}, &scalar);  // a 0-d tensor
  w.add_f32("empty", {0, 4}, nullptr);
  w.set_metadata("format", "pt");
  w.set_metadata("note", "x \"quoted\"");
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));

  // Data region 8-aligned: 8 + N is a multiple of 8.
  {
    std::ifstream f(path, std::ios::binary);
    uint64_t n;
    f.read(reinterpret_cast<char*>(&n), 8);
    EXPECT_EQ((8 + n) % 8, 0u);
  }

  SafeTensorsFile f = SafeTensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "x \"quoted\"");

  const STEntry& ea = f.expect("z.a", {7, 17});
  EXPECT_EQ(ea.dtype, STDType::F32);
  EXPECT_EQ(ea.offset % 4, 0u);
  EXPECT_EQ(f.read_f32(ea), a);
  EXPECT_EQ(std::memcmp(f.data(ea), a.data(), a.size() * 4), 0);

  const STEntry& eb = f.expect("b", {5});
  EXPECT_EQ(eb.dtype, STDType::BF16);
  std::vector<float> bf = f.read_f32(eb);
  for (int i = 0; i < 5; i++) EXPECT_EQ(bf[i], bf16_to_f32(b[i]));

  const STEntry& ec = f.expect("c", {2, 3});
  EXPECT_EQ(ec.dtype, STDType::I32);
  EXPECT_EQ(f.read_i32(ec), c);

  const STEntry& es = f.expect("s", {});
  EXPECT_EQ(es.numel(), 1);
  EXPECT_EQ(f.read_f32(es)[0], 2.5f);
  EXPECT_EQ(f.expect("empty", {0, 4}).nbytes, 0u);

  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_THROW(f.at("nope"), std::runtime_error);
  EXPECT_THROW(f.expect("z.a", {17, 7}), std::runtime_error);
  EXPECT_THROW(f.read_i32(ea), std::runtime_error);   // F32 is not an integer type
  EXPECT_THROW(f.read_f32(ec), std::runtime_error);   // I32 is not a float type

  // Move keeps the mapping valid; the moved-from object owns nothing.
  SafeTensorsFile g = std::move(f);
  EXPECT_EQ(g.read_f32(g.at("z.a")), a);

  // Overwriting an existing file replaces it atomically.
  SafeTensorsWriter w2;
  w2.add("c", STDType::I32, {6}, c.data());
  w2.write(path);
  SafeTensorsFile h = SafeTensorsFile::open(path);
  EXPECT_EQ(h.tensors().size(), 1u);
  EXPECT_TRUE(h.metadata().empty());
}

TEST(SafeTensors, F16Conversion) {
  // 1.0, -2.0, 65504 (max), smallest subnormal 2^-24, inf, 0.5 + 2^-11, -0
  uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3801, 0x8000};
  float want[] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, INFINITY, 0.50048828125f, -0.0f};
  std::string path = temp_dir() + "/f16.safetensors";
  SafeTensorsWriter w;
  w.add("h", STDType::F16, {7}, h);
  w.write(path);
  SafeTensorsFile f = SafeTensorsFile::open(path);
  std::vector<float> got = f.read_f32(f.at("h"));
  for (int i = 0; i < 7; i++) EXPECT_EQ(got[i], want[i]) << i;
  EXPECT_TRUE(std::signbit(got[6]));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f16_to_f32(0x03ff), 6.09755516052246094e-5f);  // largest subnormal
}

TEST(SafeTensors, WriterErrorNamesPathAndLeavesNoTemp) {
  std::vector<float> a(3);
  SafeTensorsWriter w;
  w.add_f32("a", {3}, a.data());
  EXPECT_THROW(w.add_f32("a", {3}, a.data()), std::runtime_error);
  EXPECT_THROW(w.add_f32("__metadata__", {3}, a.data()), std::runtime_error);
  std::string path = temp_dir() + "/no_such_dir/x.safetensors";
  try {
    w.write(path);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // A directory in place of the target: the rename fails; the temp file must be gone.
  std::string dir_target = temp_dir() + "/is_a_dir";
  fs::create_directories(dir_target + "/sub");
  try {
    w.write(dir_target);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_target), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_target + ".tmp." + std::to_string(::getpid())));
}

TEST(SafeTensorsBad, MissingFile) { expect_error(temp_dir() + "/absent.safetensors", {"absent.safetensors"}); }

TEST(SafeTensorsBad, TruncatedFile) {
  std::string path = temp_dir() + "/trunc.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  expect_error(path, {path, "shorter than"});
}

TEST(SafeTensorsBad, HeaderLengthPastEnd) {
  std::string path = write_raw("hlen.safetensors", "{}", "", 1000);
  expect_error(path, {path, "header length 1000"});
}

TEST(SafeTensorsBad, HugeHeaderLength) {
  std::string path = write_raw("hlen2.safetensors", "{}", "", int64_t(1) << 62);
  expect_error(path, {path, "header length"});
}

TEST(SafeTensorsBad, InvalidJson) {
  std::string path = write_raw("json.safetensors", "{\"a\": {\"dtype\": ");
  expect_error(path, {path, "not valid JSON"});
}

TEST(SafeTensorsBad, HeaderNotObject) {
  std::string path = write_raw("arr.safetensors", "[1, 2]");
  expect_error(path, {path, "must be a JSON object"});
}

TEST(SafeTensorsBad, DuplicateKey) {
  std::string path = write_raw(
      "dup.safetensors",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      std::string(8, '\0'));
  expect_error(path, {path, "'a' more than once"});
}

TEST(SafeTensorsBad, UnknownDtype) {
  std::string path =
      write_raw("dtype.safetensors", R"({"w.x":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", "ab");
  expect_error(path, {path, "'w.x'", "unknown dtype 'F8'"});
}

TEST(SafeTensorsBad, NegativeShape) {
  std::string path =
      write_raw("neg.safetensors", R"({"w":{"dtype":"U8","shape":[-2],"data_offsets":[0,0]}})");
  expect_error(path, {path, "'w'", "non-negative"});
}

TEST(SafeTensorsBad, ShapeOverflow) {
  std::string path = write_raw(
      "ovf.safetensors",
      R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})");
  expect_error(path, {path, "'w'", "too many elements"});
}

TEST(SafeTensorsBad, OffsetsPastEnd) {
  std::string path =
      write_raw("past.safetensors", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "12345678");
  expect_error(path, {path, "'w'", "past the data region of 8 bytes"});
}

TEST(SafeTensorsBad, OffsetsReversed) {
  std::string path =
      write_raw("rev.safetensors", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", "12345678");
  expect_error(path, {path, "'w'", "begin > end"});
}

TEST(SafeTensorsBad, OverlappingOffsets) {
  std::string path = write_raw(
      "overlap.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  expect_error(path, {path, "'b'", "overlap tensor 'a'"});
}

TEST(SafeTensorsBad, ContainedRangeOverlaps) {
  // c lies inside a; b after a does not hide it (checked against the furthest end).
  std::string path = write_raw(
      "overlap2.safetensors",
      R"({"a":{"dtype":"U8","shape":[10],"data_offsets":[0,10]},"b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]},)"
      R"("c":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
      std::string(12, '\0'));
  expect_error(path, {path, "overlap"});
}

TEST(SafeTensorsBad, SizeMismatchVsShape) {
  std::string path =
      write_raw("size.safetensors", R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}})", "12345678");
  expect_error(path, {path, "'w'", "8 bytes, expected 12"});
}

TEST(SafeTensorsBad, MissingField) {
  std::string path = write_raw("miss.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,0]}})");
  expect_error(path, {path, "'w'", "shape"});
}

TEST(SafeTensorsBad, BadOffsetsForm) {
  std::string path = write_raw("offs.safetensors", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0]}})");
  expect_error(path, {path, "'w'", "data_offsets"});
}

TEST(SafeTensorsBad, MetadataNotStrings) {
  std::string path = write_raw("meta.safetensors", R"({"__metadata__":{"k":1}})");
  expect_error(path, {path, "__metadata__", "'k'"});
}

}  // namespace
}  // namespace moe
