#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace moe {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is this code");

using json = nlohmann::json;

// The Rust reference implementation refuses headers above 100 MB; a bigger one is
// a corrupt or hostile file, not a model.
static constexpr uint64_t kMaxHeader = 100u << 20;

// ---------------------------------------------------------------- reader

namespace {
// A JSON value for an error message: dump() recurses once per nesting level, so a
// deeply nested array in a hostile header would overflow the stack; show those as "[...]".
std::string brief(const json& v) {
  if (v.is_structured())
    for (const json& x : v)
      if (x.is_structured()) return v.is_array() ? "[...]" : "{...}";
  return v.dump();
}
}  // namespace

void SafeTensorsFile::fail(const std::string& what) const {
  throw std::runtime_error("safetensors: " + path_ + ": " + what);
}

void SafeTensorsFile::fail(const STEntry& e, const std::string& what) const {
  throw std::runtime_error("safetensors: " + path_ + ": tensor '" + e.name + "': " + what);
}

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  SafeTensorsFile f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block us: refused below
  if (fd < 0) f.fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    f.fail(std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    f.fail("not a regular file");
  }
  size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    f.fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) f.fail(std::string("cannot mmap: ") + std::strerror(err));
  f.map_ = static_cast<const unsigned char*>(p);
  f.map_size_ = size;  // from here on the destructor unmaps, also when we throw

  uint64_t n;
  std::memcpy(&n, f.map_, 8);
  if (n > size - 8)
    f.fail("header length " + std::to_string(n) + " is larger than the " + std::to_string(size - 8) +
           " bytes after the length field");
  if (n > kMaxHeader)
    f.fail("header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeader) + " bytes");
  f.data_begin_ = f.map_ + 8 + n;
  f.parse_header(reinterpret_cast<const char*>(f.map_ + 8), size_t(n), size - 8 - n);
  return f;
}

// Parses the JSON and fills entries_, index_, metadata_. data_size: bytes after the header.
void SafeTensorsFile::parse_header(const char* text, size_t n, uint64_t data_size) {
  // nlohmann keeps the last of duplicate keys silently; a duplicate tensor name or
  // field is ambiguous, so record the first one the parser sees and refuse it.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json h;
  try {
    h = json::parse(text, text + n, cb);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    fail("header is not valid JSON (" + msg + ")");
  }
  if (!h.is_object()) fail(std::string("header must be a JSON object, got ") + h.type_name());
  if (!duplicate.empty()) fail("header has the key '" + duplicate + "' more than once");

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(std::string("__metadata__ must be an object of strings, got ") + v.type_name());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail("__metadata__ key '" + m.key() + "' must be a string, got " + m.value().type_name());
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    STEntry e;
    e.name = name;
    if (!v.is_object()) fail(e, std::string("entry must be an object, got ") + v.type_name());
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        fail(e, "unexpected field '" + f.key() + "' (expected dtype, shape, data_offsets)");

    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(e, "missing or non-string 'dtype'");
    if (!st_dtype_parse(dt->get_ref<const std::string&>(), &e.dtype))
      fail(e, "unknown dtype '" + dt->get<std::string>() +
                  "' (expected one of F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL)");

    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(e, "missing or non-array 'shape'");
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned())  // parsed non-negative integers are unsigned
        fail(e, "shape " + brief(*sh) + " must hold non-negative integers");
      uint64_t x = d.get<uint64_t>();
      if (x > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, x, &numel) || numel > uint64_t(INT64_MAX))
        fail(e, "shape " + sh->dump() + " has too many elements");
      e.shape.push_back(int64_t(x));
    }

    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(e, "'data_offsets' must be [begin, end] of non-negative integers");
    uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end)
      fail(e, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] has begin > end");
    if (end > data_size)
      fail(e, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] extend past the data region of " + std::to_string(data_size) + " bytes");
    e.offset = begin;
    e.nbytes = end - begin;
    uint64_t want;
    bool overflow = __builtin_mul_overflow(numel, uint64_t(st_dtype_size(e.dtype)), &want);
    if (overflow || want != e.nbytes)
      fail(e, "data_offsets span " + std::to_string(e.nbytes) + " bytes, expected " +
                  (overflow ? std::string("more than 2^64") : std::to_string(want)) + " for " +
                  st_dtype_name(e.dtype) + " " + e.shape_str());
    entries_.push_back(std::move(e));
  }

  // Data order; ties (empty tensors) by name so the order is deterministic.
  std::sort(entries_.begin(), entries_.end(), [](const STEntry& a, const STEntry& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.name < b.name;
  });
  // Non-empty byte ranges [offset, offset + nbytes) must be disjoint. Sorted by start,
  // each one must begin at or after the furthest end seen so far.
  const STEntry* furthest = nullptr;
  for (const STEntry& e : entries_) {
    if (e.nbytes == 0) continue;
    if (furthest && e.offset < furthest->offset + furthest->nbytes)
      fail(e, "bytes [" + std::to_string(e.offset) + ", " + std::to_string(e.offset + e.nbytes) +
                  ") overlap tensor '" + furthest->name + "' at [" + std::to_string(furthest->offset) + ", " +
                  std::to_string(furthest->offset + furthest->nbytes) + ")");
    if (!furthest || e.offset + e.nbytes > furthest->offset + furthest->nbytes) furthest = &e;
  }
  for (size_t i = 0; i < entries_.size(); i++) index_[entries_[i].name] = i;
}

SafeTensorsFile::SafeTensorsFile(SafeTensorsFile&& o) noexcept { *this = std::move(o); }

SafeTensorsFile& SafeTensorsFile::operator=(SafeTensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), map_size_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    data_begin_ = o.data_begin_;
    entries_ = std::move(o.entries_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.map_size_ = 0;
    o.data_begin_ = nullptr;
  }
  return *this;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_size_);
}

const STEntry* SafeTensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const STEntry& SafeTensorsFile::at(const std::string& name) const {
  const STEntry* e = find(name);
  if (!e) fail("no tensor '" + name + "'");
  return *e;
}

const STEntry& SafeTensorsFile::expect(const std::string& name, const std::vector<int64_t>& shape) const {
  const STEntry& e = at(name);
  if (e.shape != shape) fail(e, "has shape " + e.shape_str() + ", expected " + shape_string(shape));
  return e;
}

const void* SafeTensorsFile::data(const STEntry& e) const { return data_begin_ + e.offset; }

namespace {
void advise(const unsigned char* p, uint64_t n, int advice) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t b = uintptr_t(p) / page * page;
  ::madvise(reinterpret_cast<void*>(b), uintptr_t(p) + n - b, advice);  // advice only: failure is harmless
}
}  // namespace

void SafeTensorsFile::release(const STEntry& e) const {
  if (map_ && e.nbytes) advise(data_begin_ + e.offset, e.nbytes, MADV_DONTNEED);
}

void SafeTensorsFile::prefetch(const STEntry& e) const {
  if (map_ && e.nbytes) advise(data_begin_ + e.offset, e.nbytes, MADV_WILLNEED);
}

void SafeTensorsFile::read_f32(const STEntry& e, float* out, size_t n) const {
  if (uint64_t(e.numel()) != n)
    fail(e, "has " + std::to_string(e.numel()) + " elements, the caller expected " + std::to_string(n));
  read_f32(e, 0, n, out);
}

void SafeTensorsFile::read_f32(const STEntry& e, size_t begin, size_t n, float* out) const {
  if (begin > uint64_t(e.numel()) || n > uint64_t(e.numel()) - begin)
    fail(e, "has " + std::to_string(e.numel()) + " elements, the caller asked for [" + std::to_string(begin) + ", " +
                std::to_string(begin + n) + ")");
  const size_t es = e.dtype == STDType::F32 ? 4 : 2;
  const unsigned char* p = data_begin_ + e.offset + begin * es;
  switch (e.dtype) {
    case STDType::F32:
      if (n) std::memcpy(out, p, n * 4);  // an empty tensor's out may be null
      break;
    case STDType::BF16:
#pragma omp parallel for schedule(static) if (n > (1u << 16))
      for (size_t i = 0; i < n; i++) {
        bf16 h;
        std::memcpy(&h.bits, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    case STDType::F16:
#pragma omp parallel for schedule(static) if (n > (1u << 16))
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    default:
      fail(e, std::string("dtype ") + st_dtype_name(e.dtype) + " cannot be read as float32 (expected F32, BF16 or F16)");
  }
}

namespace {
// Index of the first element whose exponent bits are all ones (Inf or NaN), or n.
template <typename U>
size_t first_nonfinite_bits(const unsigned char* p, size_t n, U exp_mask) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {  // a branch-free pass per block, then locate
    const size_t e = std::min(n, b + kBlock);
    bool bad = false;
    for (size_t i = b; i < e; i++) {
      U v;
      std::memcpy(&v, p + i * sizeof(U), sizeof(U));
      bad |= (v & exp_mask) == exp_mask;
    }
    if (!bad) continue;
    for (size_t i = b; i < e; i++) {
      U v;
      std::memcpy(&v, p + i * sizeof(U), sizeof(U));
      if ((v & exp_mask) == exp_mask) return i;
    }
  }
  return n;
}
}  // namespace

void SafeTensorsFile::check_finite(const STEntry& e, bool release_pages) const {
  const unsigned char* p = data_begin_ + e.offset;
  const size_t n = size_t(e.numel());
  uint32_t exp_mask, mant_mask;
  size_t es;
  switch (e.dtype) {
    case STDType::F32: exp_mask = 0x7f800000u, mant_mask = 0x007fffffu, es = 4; break;
    case STDType::BF16: exp_mask = 0x7f80u, mant_mask = 0x7fu, es = 2; break;
    case STDType::F16: exp_mask = 0x7c00u, mant_mask = 0x3ffu, es = 2; break;
    default: return;  // integer tensors are always finite
  }
  // In blocks of 16 MB, each released after its pass when asked: a streaming reader's
  // resident memory stays one block however large the tensor.
  const size_t block = (size_t(16) << 20) / es;
  size_t i = n;
  for (size_t b = 0; b < n && i == n; b += block) {
    const size_t len = std::min(block, n - b);
    const size_t j = es == 4 ? first_nonfinite_bits<uint32_t>(p + b * es, len, exp_mask)
                             : first_nonfinite_bits<uint16_t>(p + b * es, len, uint16_t(exp_mask));
    if (j < len) i = b + j;
    if (release_pages && map_) advise(p + b * es, len * es, MADV_DONTNEED);
  }
  if (i < n) {
    uint32_t v = 0;
    std::memcpy(&v, p + es * i, es);  // little-endian: the low bytes
    fail(e, std::string("holds ") + ((v & mant_mask) != 0 ? "NaN" : "Inf") + " at flat index " + std::to_string(i) +
                " (non-finite weights are refused)");
  }
}

std::vector<float> SafeTensorsFile::read_f32(const STEntry& e) const {
  std::vector<float> v(size_t(e.numel()));
  read_f32(e, v.data(), v.size());
  return v;
}

std::vector<int32_t> SafeTensorsFile::read_i32(const STEntry& e) const {
  size_t n = size_t(e.numel());
  std::vector<int32_t> v(n);
  const unsigned char* p = data_begin_ + e.offset;
  if (e.dtype == STDType::I32) {
    if (n) std::memcpy(v.data(), p, n * 4);  // v.data() is null when empty
  } else if (e.dtype == STDType::I64) {
    for (size_t i = 0; i < n; i++) {
      int64_t x;
      std::memcpy(&x, p + 8 * i, 8);
      if (x < INT32_MIN || x > INT32_MAX)
        fail(e, "value " + std::to_string(x) + " at index " + std::to_string(i) + " does not fit in int32");
      v[i] = int32_t(x);
    }
  } else {
    fail(e, std::string("dtype ") + st_dtype_name(e.dtype) + " cannot be read as int32 (expected I32 or I64)");
  }
  return v;
}

}  // namespace moe
