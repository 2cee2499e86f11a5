// safetensors: read (memory-mapped, every field of the untrusted file validated) and
// write (atomically: temp file, fsync, rename, fsync of the directory).
//
// Format: 8-byte little-endian u64 N, N bytes of JSON header, then the data region.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the start of the data region) plus an optional "__metadata__"
// object of string -> string. Data is raw little-endian, row-major.
//
// Every error is a std::runtime_error with one line naming the file, the tensor
// (when there is one) and what was expected.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"

namespace moe {

// The safetensors dtypes this project knows (a subset of the format's list).
enum class STDType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

size_t st_dtype_size(STDType t);
const char* st_dtype_name(STDType t);                 // the header spelling: "F32", "BF16", ...
bool st_dtype_parse(std::string_view s, STDType* out);  // false when unknown
STDType st_dtype_of(DType t);                          // F32 -> F32, BF16 -> BF16

// IEEE half -> float32 (exact: every half is a float).
float f16_to_f32(uint16_t h);
// float32 -> n values of dtype F32, BF16 or F16 (round to nearest even) at dst.
void st_encode_f32(void* dst, const float* src, size_t n, STDType t);
// The same for a tensor written to a file: a finite value beyond the dtype's range (f16:
// |x| >= 65520 rounds to Inf; bf16: above 3.39e38) is refused, naming `tensor` and the
// flat index, instead of writing an Inf that every reader then refuses.
void st_encode_f32_checked(void* dst, const float* src, size_t n, STDType t, const std::string& tensor);
std::string shape_string(const std::vector<int64_t>& s);  // "[2, 3]"

struct STEntry {
  std::string name;
  STDType dtype = STDType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // data_offsets[0]: bytes from the start of the data region
  uint64_t nbytes = 0;  // data_offsets[1] - data_offsets[0] == numel * dtype size
  int64_t numel() const;
  std::string shape_str() const;  // "[2, 3]"
};

class SafeTensorsFile {
 public:
  // Maps `path` read-only and validates the whole header. Throws on any problem.
  static SafeTensorsFile open(const std::string& path);

  SafeTensorsFile(SafeTensorsFile&& o) noexcept;
  SafeTensorsFile& operator=(SafeTensorsFile&& o) noexcept;
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;
  ~SafeTensorsFile();

  const std::string& path() const { return path_; }
  // All tensors, in the order of their data in the file.
  const std::vector<STEntry>& tensors() const { return entries_; }
  const STEntry* find(const std::string& name) const;  // nullptr when absent
  const STEntry& at(const std::string& name) const;    // throws naming file and tensor
  // at() plus a shape check: throws "... has shape [a, b], expected [c, d]".
  const STEntry& expect(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's bytes inside the mapping (valid while this object lives). Aligned to
  // the element size when the writer aligned the data region (ours and HF's do);
  // the read_* helpers below never assume alignment.
  const void* data(const STEntry& e) const;

  // Drops the tensor's pages from this process's resident set (they stay in the page
  // cache; a later access maps them again). Streaming readers call it after use.
  void release(const STEntry& e) const;
  // Asks the kernel to read the tensor's pages ahead (asynchronously): a streaming
  // reader calls it for the next tensor while it works on this one.
  void prefetch(const STEntry& e) const;
  // Where the tensor's bytes start in the file (for copies that bypass the mapping).
  uint64_t file_offset(const STEntry& e) const { return uint64_t(data_begin_ - map_) + e.offset; }

  // Converts an F32, BF16 or F16 tensor to float32 into out[0 .. n); n must equal numel.
  void read_f32(const STEntry& e, float* out, size_t n) const;
  std::vector<float> read_f32(const STEntry& e) const;
  // Elements [begin, begin + n) only (a streaming reader's block); throws when outside.
  void read_f32(const STEntry& e, size_t begin, size_t n, float* out) const;
  // Throws "...: tensor 'x': holds NaN at flat index i (...)" when an F32, BF16 or F16
  // tensor holds a NaN or an Inf (integer tensors pass). One pass over its bytes.
  // release_pages: drop each checked block's pages (a streaming reader's pass).
  void check_finite(const STEntry& e, bool release_pages = false) const;
  // An I32 tensor, or an I64 one whose values all fit in int32.
  std::vector<int32_t> read_i32(const STEntry& e) const;

 private:
  SafeTensorsFile() = default;
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail(const STEntry& e, const std::string& what) const;
  void parse_header(const char* json, size_t n, uint64_t data_size);

  std::string path_;
  const unsigned char* map_ = nullptr;  // whole file
  size_t map_size_ = 0;
  const unsigned char* data_begin_ = nullptr;  // map_ + 8 + N
  std::vector<STEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A writer's entry for a new tensor (offset 0, nbytes from shape and dtype). Throws
// "<who>: tensor '<name>': ..." on a reserved name ("", "__metadata__") or a bad shape.
STEntry st_new_entry(const std::string& name, STDType dtype, const std::vector<int64_t>& shape, const char* who);

// The header of a file holding `entries` back to back in this order (their offsets
// are recomputed), with optional metadata: JSON padded with spaces so that 8 + its
// length is a multiple of 8. Shared by the writers.
std::string st_header(std::vector<STEntry>& entries, const std::map<std::string, std::string>& metadata);
// Orders entries by descending element size, stably: each tensor then starts aligned.
void st_order_for_alignment(std::vector<STEntry>& entries);
// write(2) of all n bytes (retrying short writes); false with errno set on failure.
bool st_write_all(int fd, const void* buf, size_t n);

// Collects tensors (pointers to caller-owned bytes, which must stay valid until
// write() returns) and writes one file. Header keys sorted; the data region starts
// 8-byte aligned (the header is padded with spaces) and tensors are laid out by
// descending element size then name, back to back, so each one is aligned to its
// element size and the offsets are contiguous (as the Rust reader requires).
class SafeTensorsWriter {
 public:
  // Throws on a duplicate or reserved name ("__metadata__", empty) or a negative dim.
  void add(const std::string& name, STDType dtype, const std::vector<int64_t>& shape, const void* data);
  void add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
    add(name, STDType::F32, shape, data);
  }
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  size_t size() const { return items_.size(); }

  // Writes "<path>.tmp.<pid>", fsyncs it, renames it over `path`, fsyncs the
  // directory. On error the temp file is removed and the error names `path`.
  void write(const std::string& path) const;

 private:
  struct Item {
    STEntry e;
    const void* data;
  };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moe
