// Checkpoint round trips: model_save in F32, BF16 and F16 and model_load give back the
// weights exactly (F32) or rounded once to the stored dtype (BF16, F16), for both
// families (GPT-2's Conv1D weights are transposed on the way out and back in).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "tensor/dtype.h"

namespace moe {
namespace {

float f16_round(float x) { return f16_to_f32(f32_to_f16_bits(x)); }
float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

TEST(Checkpoint, SaveLoadRoundTripInEveryDtype) {
  for (const char* family : {"gpt2", "llama"})
    for (STDType dt : {STDType::F32, STDType::BF16, STDType::F16}) {
      ModelConfig c = model_preset(family, "tiny", 96);
      Model m(c);
      m.init_weights(5);
      const std::string dir = std::string(MOE_TEST_BIN) + "/ckpt_roundtrip_" + family + "_" + st_dtype_name(dt);
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir);
      model_save(m, dir, dt);
      auto f = SafeTensorsFile::open(dir + "/model.safetensors");
      for (const STEntry& e : f.tensors()) EXPECT_EQ(e.dtype, dt) << e.name << " stored in the dtype asked for";
      auto back = model_load(dir);
      ASSERT_EQ(back->layout().numel(), m.layout().numel());
      for (const ParamSpec& s : m.layout().specs())
        for (int64_t i = 0; i < s.shape.numel(); i++) {
          float x = m.params().data()[s.offset + i];
          float want = dt == STDType::F32 ? x : dt == STDType::BF16 ? bf16_round(x) : f16_round(x);
          ASSERT_EQ(back->params().data()[s.offset + i], want) << family << " " << s.name << "[" << i << "]";
        }
      if (std::string(family) == "gpt2") {
        // HF layout on disk: c_fc is stored [in, out] = [C, F].
        const STEntry& fc = f.at("transformer.h.0.mlp.c_fc.weight");
        EXPECT_EQ(fc.shape, (std::vector<int64_t>{c.n_embd, c.n_inner}));
      }
    }
}

TEST(Checkpoint, HalfConversionRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16_bits(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16_bits(65520.0f), 0x7c00);           // halfway to 65536 rounds to even: inf
  EXPECT_EQ(f32_to_f16_bits(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16_bits(5.9604645e-8f), 0x0001);      // 2^-24, the smallest subnormal
  EXPECT_EQ(f32_to_f16_bits(2.9802322e-8f), 0x0000);      // 2^-25: a tie, to even (zero)
  EXPECT_EQ(f32_to_f16_bits(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16_bits(1.0f + 1.0f / 2048), 0x3c00);  // tie below an even mantissa
  EXPECT_EQ(f32_to_f16_bits(1.0f + 3.0f / 2048), 0x3c02);  // tie above an odd one
  EXPECT_EQ(f16_to_f32(f32_to_f16_bits(0.333333f)), f16_to_f32(0x3555));
  EXPECT_EQ(f32_to_f16_bits(6.1035156e-5f), 0x0400);      // 2^-14, the smallest normal
  uint16_t nan = f32_to_f16_bits(std::nanf(""));
  EXPECT_TRUE((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
}

}  // namespace
}  // namespace moe
