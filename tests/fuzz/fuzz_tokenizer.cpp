// libFuzzer: Tokenizer::load (a SentencePiece model file) on arbitrary bytes; a model
// it accepts must then encode, decode, name and score its pieces and give its spec
// without crashing. tokenizer_spec_parse (our protobuf reader) also sees the raw bytes.
#include <algorithm>
#include <stdexcept>

#include "data/tokenizer.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = moe::fuzz::temp_path("tokenizer.model");
  moe::fuzz::write_file(path, data, size);
  moe::fuzz::tolerate_bad_input([&] {
    (void)moe::tokenizer_spec_parse(std::string(reinterpret_cast<const char*>(data), size), path);
  });
  moe::fuzz::tolerate_bad_input([&] {
    moe::Tokenizer t = moe::Tokenizer::load(path);
    const int32_t V = t.vocab_size();
    (void)t.unk_id(), (void)t.bos_id(), (void)t.eos_id(), (void)t.pad_id();
    std::vector<int32_t> ids = t.encode("It is a truth 1984,\n\tuniversally ack\xc3\xa9 \xe2\x96\x81 <s>");
    for (int32_t id : ids)
      if (id < 0 || id >= V) __builtin_trap();
    (void)t.decode(ids);
    for (int32_t i = 0; i < std::min(V, 64); i++) (void)t.piece(i);
    (void)t.piece(V - 1);
    (void)t.score(V - 1);
    if (t.spec().kinds.size() != size_t(V)) __builtin_trap();  // the library read the same pieces
  });
  return 0;
}
