// Tensor basics: bf16 rounding, shapes, the arena, flat parameter buffers, threads.
#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/arena.h"
#include "tensor/cpu.h"
#include "tensor/dtype.h"
#include "tensor/flat.h"
#include "tensor/tensor.h"
#include "testutil.h"

namespace moe::test {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Bf16, RoundsToNearestEven) {
  // 1.0 is 0x3f800000; the bf16 ulp at 1.0 is 2^-7. Halfway cases go to even.
  EXPECT_EQ(f32_to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000)).bits, 0x3f80);  // tie, even below
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000)).bits, 0x3f82);  // tie, odd below -> up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001)).bits, 0x3f81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fff)).bits, 0x3f80);  // just below
  EXPECT_EQ(f32_to_bf16(-2.5f).bits, 0xc020);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()).bits, 0x7f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffff)).bits, 0x7f80);  // FLT_MAX rounds to +inf, as IEEE says
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001)))));  // signalling NaN stays NaN
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000)).bits, 0x0001);  // denormals keep their bits
  EXPECT_EQ(bf16_to_f32(bf16{0x4049}), 3.140625f);
}

TEST(Bf16, ArrayConversionMatchesScalarBitForBit) {
  // Every 2^16-th bit pattern plus random ones, across odd lengths (vector body + tail).
  std::vector<float> in;
  for (uint64_t u = 0; u < (1ull << 32); u += 65537) in.push_back(from_bits(uint32_t(u)));
  auto r = randn<float>(1001, 5, 100.0);
  in.insert(in.end(), r.begin(), r.end());
  for (size_t n : {size_t(1), size_t(15), size_t(17), in.size()}) {
    std::vector<bf16> fast(n), ref(n);
    f32_to_bf16(fast.data(), in.data(), n);
    f32_to_bf16_ref(ref.data(), in.data(), n);
    for (size_t i = 0; i < n; i++) {
      bool both_nan = std::isnan(bf16_to_f32(fast[i])) && std::isnan(bf16_to_f32(ref[i]));
      ASSERT_TRUE(both_nan || fast[i].bits == ref[i].bits) << "at " << i << " input bits " << std::hex
                                                             << *reinterpret_cast<const uint32_t*>(&in[i]);
    }
    std::vector<float> back(n);
    bf16_to_f32(back.data(), fast.data(), n);
    for (size_t i = 0; i < n; i++) {
      if (std::isfinite(in[i]) && std::fabs(in[i]) > 1e-30f && std::fabs(in[i]) < 1e30f) {
        ASSERT_LE(std::fabs(back[i] - in[i]), std::fabs(in[i]) * 0x1p-8f) << "half an ulp of bf16 at " << i;
      }
    }
  }
}

TEST(F16, ArrayConversionMatchesScalarBitForBit) {
  // Every 2^16-th bit pattern (normal, subnormal-half, overflow, NaN ranges), the
  // halfway cases of the subnormal halves, and random values; vector body + tail.
  std::vector<float> in;
  for (uint64_t u = 0; u < (1ull << 32); u += 65537) in.push_back(from_bits(uint32_t(u)));
  for (int k = 0; k < 2048; k++) in.push_back((float(k) + 0.5f) * 0x1p-24f), in.push_back(-(float(k) + 0.5f) * 0x1p-24f);
  auto r = randn<float>(1001, 6, 100.0);
  in.insert(in.end(), r.begin(), r.end());
  for (size_t n : {size_t(1), size_t(15), size_t(17), in.size()}) {
    std::vector<uint16_t> fast(n);
    f32_to_f16(fast.data(), in.data(), n);
    for (size_t i = 0; i < n; i++)
      ASSERT_EQ(fast[i], f32_to_f16_bits(in[i])) << "at " << i << " input bits " << std::hex
                                                 << *reinterpret_cast<const uint32_t*>(&in[i]);
  }
}

TEST(Shape, NumelEqualityAndPrinting) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(s, (Shape{2, 3, 4}));
  EXPECT_NE(s, (Shape{2, 12}));
  EXPECT_EQ(Shape{}.numel(), 1);  // a scalar
  EXPECT_THROW((Shape{1, 2, 3, 4, 5, 6, 7}), std::invalid_argument);
}

TEST(Arena, AlignsResetsAndReportsOverflow) {
  Arena a(1024);
  void* p1 = a.alloc_bytes(3);
  void* p2 = a.alloc_bytes(5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p1) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p2) % 64, 0u);
  EXPECT_NE(p1, p2);
  Tensor t = a.tensor(DType::BF16, Shape{4, 8});
  EXPECT_EQ(t.nbytes(), 64u);
  EXPECT_THROW(t.f32(), std::logic_error);
  EXPECT_GT(a.high_water(), 128u);
  a.reset();
  EXPECT_EQ(a.alloc_bytes(1), p1) << "reset starts over from the base";
  try {
    a.alloc_bytes(2048);
    FAIL() << "an allocation past capacity must throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("2048"), std::string::npos) << e.what();
  }
}

TEST(FlatBuffer, SharedLayoutForParamsGradsAndMoments) {
  ParamLayout layout;
  layout.add("wte", Shape{5, 3});
  layout.add("ln.weight", Shape{3});
  layout.add("ln.bias", Shape{3});
  EXPECT_THROW(layout.add("wte", Shape{1}), std::invalid_argument);
  EXPECT_EQ(layout.num_params(), 21u);
  for (const auto& s : layout.specs()) EXPECT_EQ(s.offset % 16, 0u) << s.name << " is 64-byte aligned";
  FlatBuffer params(layout), grads(layout);
  EXPECT_EQ(params.numel(), grads.numel());
  for (size_t i = 0; i < params.numel(); i++) ASSERT_EQ(params.data()[i], 0.0f);
  params.at("ln.bias")[2] = 7.0f;
  EXPECT_EQ(params.data()[layout.at("ln.bias").offset + 2], 7.0f);
  EXPECT_EQ(params.view("wte").shape, (Shape{5, 3}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(params.data()) % 64, 0u);
  try {
    layout.at("missing.weight");
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos);
  }
}

TEST(Threads, NeverMoreThanCores) {
  int cores = cpu_cores();
  EXPECT_GE(cores, 1);
  EXPECT_EQ(threads_set(cores + 5), cores);
  EXPECT_EQ(threads_set(1), 1);
  EXPECT_EQ(threads_set(0), cores);
}

}  // namespace
}  // namespace moe::test
