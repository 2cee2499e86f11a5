// Writing safetensors files (safetensors.h): entries laid out for alignment, the
// header, and the file written whole to a temp file, fsynced and renamed into place.
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

using json = nlohmann::json;

STEntry st_new_entry(const std::string& name, STDType dtype, const std::vector<int64_t>& shape, const char* who) {
  auto err = [&](const std::string& what) {
    throw std::runtime_error(std::string(who) + ": tensor '" + name + "': " + what);
  };
  if (name.empty() || name == "__metadata__") err("reserved name");
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel)) err("bad shape " + shape_string(shape));
  STEntry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = shape;
  e.nbytes = numel * st_dtype_size(dtype);
  return e;
}

void SafeTensorsWriter::add(const std::string& name, STDType dtype, const std::vector<int64_t>& shape,
                            const void* data) {
  STEntry e = st_new_entry(name, dtype, shape, "safetensors writer");
  for (const Item& it : items_)
    if (it.e.name == name) throw std::runtime_error("safetensors writer: tensor '" + name + "': added twice");
  if (e.nbytes && !data) throw std::runtime_error("safetensors writer: tensor '" + name + "': null data");
  items_.push_back({std::move(e), data});
}

bool st_write_all(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

void st_order_for_alignment(std::vector<STEntry>& entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const STEntry& a, const STEntry& b) {
    return st_dtype_size(a.dtype) > st_dtype_size(b.dtype);
  });
}

std::string st_header(std::vector<STEntry>& entries, const std::map<std::string, std::string>& metadata) {
  json h = json::object();  // std::map underneath: keys come out sorted
  uint64_t pos = 0;
  for (STEntry& e : entries) {
    e.offset = pos;
    h[e.name] = {{"dtype", st_dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {pos, pos + e.nbytes}}};
    pos += e.nbytes;
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // 8 + N is then a multiple of 8
  return header;
}

namespace {
// Closes fd (if open) and removes the temp file unless release() was called.
struct TempFile {
  std::string path;
  int fd = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
  }
};

}  // namespace

void SafeTensorsWriter::write(const std::string& path) const {
  auto fail = [&](const std::string& what, int err) {
    throw std::runtime_error("safetensors: cannot write " + path + ": " + what +
                             (err ? std::string(": ") + std::strerror(err) : std::string()));
  };

  // Layout: descending element size, then name; contiguous.
  std::vector<const Item*> order;
  for (const Item& it : items_) order.push_back(&it);
  std::sort(order.begin(), order.end(), [](const Item* a, const Item* b) {
    size_t sa = st_dtype_size(a->e.dtype), sb = st_dtype_size(b->e.dtype);
    return sa != sb ? sa > sb : a->e.name < b->e.name;
  });
  std::vector<STEntry> entries;
  for (const Item* it : order) entries.push_back(it->e);
  const std::string header = st_header(entries, metadata_);
  uint64_t n = header.size();

  TempFile tmp;
  tmp.path = path + ".tmp." + std::to_string(::getpid());
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tmp.fd < 0) {
    int err = errno;
    tmp.keep = true;  // we did not create it
    fail("cannot create " + tmp.path, err);
  }
  if (!st_write_all(tmp.fd, &n, 8) || !st_write_all(tmp.fd, header.data(), header.size())) fail("write", errno);
  for (const Item* it : order)
    if (it->e.nbytes && !st_write_all(tmp.fd, it->data, it->e.nbytes)) fail("write of '" + it->e.name + "'", errno);
  if (::fsync(tmp.fd) != 0) fail("fsync", errno);
  int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail("close", errno);
  if (::rename(tmp.path.c_str(), path.c_str()) != 0) fail("rename from " + tmp.path, errno);
  tmp.keep = true;  // it is the target now

  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("open directory " + dir + " for fsync", errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) fail("fsync of directory " + dir, err);
}

}  // namespace moe
