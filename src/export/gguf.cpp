#include "export/gguf.h"
#include "io/failpoint.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "io/files.h"

namespace moe {

namespace {

// GGUF metadata value types.
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);  // GGUF is little-endian, as is x86
}

void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

}  // namespace

size_t gg_type_size(GGType t) { return t == GGType::F32 ? 4 : 2; }

void GgufWriter::key(const std::string& k, uint32_t type) {
  if (k.empty()) throw std::logic_error("gguf: empty metadata key");
  if (std::find(keys_.begin(), keys_.end(), k) != keys_.end())
    throw std::logic_error("gguf: metadata key '" + k + "' given twice");
  keys_.push_back(k);
  put_str(meta_, k);
  put<uint32_t>(meta_, type);
  n_kv_++;
}

void GgufWriter::kv_u32(const std::string& k, uint32_t v) { key(k, kU32), put(meta_, v); }
void GgufWriter::kv_i32(const std::string& k, int32_t v) { key(k, kI32), put(meta_, v); }
void GgufWriter::kv_f32(const std::string& k, float v) { key(k, kF32), put(meta_, v); }
void GgufWriter::kv_bool(const std::string& k, bool v) { key(k, kBool), put<uint8_t>(meta_, v ? 1 : 0); }
void GgufWriter::kv_str(const std::string& k, const std::string& v) { key(k, kString), put_str(meta_, v); }

void GgufWriter::kv_str_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, kArray);
  put<uint32_t>(meta_, kString);
  put<uint64_t>(meta_, v.size());
  for (const std::string& s : v) put_str(meta_, s);
}

void GgufWriter::kv_f32_array(const std::string& k, const std::vector<float>& v) {
  key(k, kArray);
  put<uint32_t>(meta_, kF32);
  put<uint64_t>(meta_, v.size());
  for (float x : v) put(meta_, x);
}

void GgufWriter::kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, kArray);
  put<uint32_t>(meta_, kI32);
  put<uint64_t>(meta_, v.size());
  for (int32_t x : v) put(meta_, x);
}

void GgufWriter::add(const std::string& name, const std::vector<uint64_t>& ne, GGType t, Producer produce) {
  if (name.empty() || name.size() >= 64)  // GGML_MAX_NAME
    throw std::logic_error("gguf: tensor name '" + name + "' must have 1 to 63 characters");
  if (ne.empty() || ne.size() > 4) throw std::logic_error("gguf: tensor '" + name + "' must have 1 to 4 dims");
  for (const Tensor& x : tensors_)
    if (x.name == name) throw std::logic_error("gguf: tensor '" + name + "' added twice");
  uint64_t n = gg_type_size(t);
  for (uint64_t d : ne) {
    if (d == 0) throw std::logic_error("gguf: tensor '" + name + "' has a zero dim");
    n *= d;
  }
  tensors_.push_back({name, ne, t, n, std::move(produce)});
}

uint64_t GgufWriter::tensor_bytes() const {
  uint64_t n = 0;
  for (const Tensor& t : tensors_) n += t.nbytes;
  return n;
}

void GgufWriter::write(const std::string& path) const {
  auto pad = [](uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; };
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, n_kv_);
  head += meta_;
  uint64_t offset = 0;  // relative to the start of the data section
  for (const Tensor& t : tensors_) {
    put_str(head, t.name);
    put<uint32_t>(head, uint32_t(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(head, d);
    put<uint32_t>(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    offset += pad(t.nbytes);
  }
  AtomicFile f(path, true);
  f.write(head.data(), head.size());
  f.pad_to(kAlignment);
  for (size_t i = 0; i < tensors_.size(); i++) {
    const Tensor& t = tensors_[i];
    failpoint("write.tensor");
    uint64_t done = 0;
    t.produce([&](const void* data, size_t n) {
      if (done + n > t.nbytes) throw std::logic_error("gguf: tensor '" + t.name + "': more bytes than its shape");
      f.write(data, n);
      done += n;
    });
    if (done != t.nbytes) throw std::logic_error("gguf: tensor '" + t.name + "': fewer bytes than its shape");
    f.pad_to(kAlignment);
  }
  f.commit();
}

}  // namespace moe
