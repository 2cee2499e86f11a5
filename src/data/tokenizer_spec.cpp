// tokenizer_spec_parse: the few fields of a SentencePiece ModelProto that decide how
// text is split (sentencepiece_model.proto), read with a minimal protobuf wire-format
// reader; libsentencepiece's public headers do not expose the proto.
//   ModelProto:     1 pieces (SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece:  1 piece, 2 score, 3 type
//   TrainerSpec:    3 model_type (1 unigram, 2 bpe, 3 word, 4 char), 35 byte_fallback
//   NormalizerSpec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                   4 remove_extra_whitespaces, 5 escape_whitespaces
#include <cstdint>
#include <stdexcept>
#include <string>

#include "data/tokenizer.h"

namespace moe {

namespace {

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& name;

  [[noreturn]] void bad(const char* what) const {
    throw std::runtime_error("tokenizer: " + name + ": malformed SentencePiece model (" + what + ")");
  }
  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) bad("truncated varint");
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("varint too long");
  }
  // One field: its number, wire type, and (for length-delimited ones) a sub-reader.
  struct Field {
    uint32_t number, wire;
    uint64_t value = 0;
    const uint8_t* data = nullptr;
    size_t size = 0;
  };
  Field next() {
    const uint64_t tag = varint();
    Field f{uint32_t(tag >> 3), uint32_t(tag & 7)};
    switch (f.wire) {
      case 0: f.value = varint(); break;
      case 1:
        if (end - p < 8) bad("truncated fixed64");
        p += 8;
        break;
      case 2: {
        const uint64_t n = varint();
        if (n > uint64_t(end - p)) bad("field runs past the end");
        f.data = p, f.size = size_t(n), p += n;
        break;
      }
      case 5:
        if (end - p < 4) bad("truncated fixed32");
        f.value = uint64_t(p[0]) | uint64_t(p[1]) << 8 | uint64_t(p[2]) << 16 | uint64_t(p[3]) << 24;
        p += 4;
        break;
      default: bad("unknown wire type");
    }
    return f;
  }
  Reader sub(const Field& f) const { return Reader{f.data, f.data + f.size, name}; }
};

const char* model_type_name(uint64_t t) {
  switch (t) {
    case 1: return "unigram";
    case 2: return "bpe";
    case 3: return "word";
    case 4: return "char";
    default: return "unknown";
  }
}

}  // namespace

TokenizerSpec tokenizer_spec_parse(const std::string& bytes, const std::string& name) {
  TokenizerSpec s;
  Reader r{reinterpret_cast<const uint8_t*>(bytes.data()), reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size(),
           name};
  while (!r.done()) {
    const Reader::Field f = r.next();
    if (f.number == 1 && f.wire == 2) {
      PieceKind k = PieceKind::Normal;  // the proto's default type
      for (Reader p = r.sub(f); !p.done();) {
        const Reader::Field g = p.next();
        if (g.number == 3 && g.wire == 0) {
          if (g.value < 1 || g.value > 6) r.bad("piece type out of range");
          k = PieceKind(g.value);
        }
      }
      s.kinds.push_back(k);
    } else if (f.number == 2 && f.wire == 2) {
      for (Reader t = r.sub(f); !t.done();) {
        const Reader::Field g = t.next();
        if (g.number == 3 && g.wire == 0) s.model_type = model_type_name(g.value);
        if (g.number == 35 && g.wire == 0) s.byte_fallback = g.value != 0;
      }
    } else if (f.number == 3 && f.wire == 2) {
      for (Reader n = r.sub(f); !n.done();) {
        const Reader::Field g = n.next();
        if (g.number == 1 && g.wire == 2) s.normalizer.assign(reinterpret_cast<const char*>(g.data), g.size);
        if (g.number == 2 && g.wire == 2) s.has_charsmap = g.size > 0;
        if (g.number == 3 && g.wire == 0) s.add_dummy_prefix = g.value != 0;
        if (g.number == 4 && g.wire == 0) s.remove_extra_whitespaces = g.value != 0;
        if (g.number == 5 && g.wire == 0) s.escape_whitespaces = g.value != 0;
      }
    }
  }
  return s;
}

}  // namespace moe
