#include "io/st_shards.h"
#include "io/failpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/files.h"

namespace moe {

void ShardedWriter::add(const std::string& name, STDType dtype, const std::vector<int64_t>& shape,
                        Producer produce) {
  STEntry e = st_new_entry(name, dtype, shape, "sharded writer");
  for (const Item& it : items_)
    if (it.e.name == name) throw std::runtime_error("sharded writer: tensor '" + name + "': added twice");
  items_.push_back({std::move(e), std::move(produce), "", 0});
}

void ShardedWriter::add_copy(const std::string& name, STDType dtype, const std::vector<int64_t>& shape,
                             const std::string& path, uint64_t offset) {
  add(name, dtype, shape, nullptr);
  items_.back().copy_path = path;
  items_.back().copy_offset = offset;
}

namespace {

// Copies n bytes at `offset` of in_fd to the current position of out_fd.
bool copy_range(int in_fd, uint64_t offset, int out_fd, uint64_t n) {
  loff_t in_off = loff_t(offset);
  while (n > 0) {
    ssize_t c = ::copy_file_range(in_fd, &in_off, out_fd, nullptr, std::min<uint64_t>(n, uint64_t(1) << 30), 0);
    if (c < 0 && errno == EINTR) continue;
    if (c <= 0) break;  // unsupported here (EXDEV, ENOSYS, ...): fall back below
    n -= uint64_t(c);
  }
  std::vector<char> buf(n ? size_t(8) << 20 : 0);
  while (n > 0) {
    ssize_t r = ::pread(in_fd, buf.data(), std::min<uint64_t>(n, buf.size()), in_off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || !st_write_all(out_fd, buf.data(), size_t(r))) return false;
    in_off += r, n -= uint64_t(r);
  }
  return true;
}

}  // namespace

uint64_t ShardedWriter::total_bytes() const {
  uint64_t n = 0;
  for (const Item& it : items_) n += it.e.nbytes;
  return n;
}

std::vector<std::vector<size_t>> ShardedWriter::shards() const {
  std::vector<std::vector<size_t>> out(1);
  uint64_t used = 0;
  for (size_t i = 0; i < items_.size(); i++) {
    if (!out.back().empty() && used + items_[i].e.nbytes > max_shard_) out.emplace_back(), used = 0;
    out.back().push_back(i);
    used += items_[i].e.nbytes;
  }
  return out;
}

std::string ShardedWriter::shard_name(size_t i, size_t n) const {
  if (n == 1) return base_ + ".safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", i + 1, n);
  return base_ + buf;
}

void ShardedWriter::write(const std::string& dir, const std::function<void(size_t)>& after_each) const {
  const auto sh = shards();
  std::vector<char> scratch;
  nlohmann::json weight_map = nlohmann::json::object();
  std::map<std::string, int> sources;  // add_copy files, opened once
  struct Fds {
    std::map<std::string, int>& m;
    ~Fds() {
      for (auto& [p, fd] : m) ::close(fd);
    }
  } fds{sources};
  for (size_t s = 0; s < sh.size(); s++) {
    const std::string path = dir + "/" + shard_name(s, sh.size());
    auto fail = [&](const std::string& what, int err) {
      throw std::runtime_error("cannot write " + path + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
    };
    // Data order inside the shard: by descending element size (alignment), stably.
    std::vector<size_t> order = sh[s];
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return st_dtype_size(items_[a].e.dtype) > st_dtype_size(items_[b].e.dtype);
    });
    std::vector<STEntry> entries;
    for (size_t i : order) entries.push_back(items_[i].e);
    const std::string header = st_header(entries, metadata_);
    const uint64_t n = header.size();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("create", errno);
    struct Closer {
      int fd;
      ~Closer() {
        if (fd >= 0) ::close(fd);
      }
    } closer{fd};
    if (!st_write_all(fd, &n, 8) || !st_write_all(fd, header.data(), header.size())) fail("write header", errno);
    for (size_t i : order) {
      failpoint("write.tensor");
      const Item& it = items_[i];
      if (!it.copy_path.empty()) {
        auto src = sources.find(it.copy_path);
        if (src == sources.end()) {
          int in = ::open(it.copy_path.c_str(), O_RDONLY | O_CLOEXEC);
          if (in < 0) fail("open " + it.copy_path, errno);
          src = sources.emplace(it.copy_path, in).first;
        }
        if (!copy_range(src->second, it.copy_offset, fd, it.e.nbytes))
          fail("copy of tensor '" + it.e.name + "' from " + it.copy_path, errno);
      } else {
        const void* bytes = it.produce(scratch);
        if (it.e.nbytes && !st_write_all(fd, bytes, it.e.nbytes)) fail("write of tensor '" + it.e.name + "'", errno);
      }
      weight_map[it.e.name] = shard_name(s, sh.size());
      if (after_each) after_each(i);
    }
    if (::fsync(fd) != 0) fail("fsync", errno);
    closer.fd = -1;
    if (::close(fd) != 0) fail("close", errno);
  }
  if (sh.size() > 1) {
    nlohmann::json idx{{"metadata", {{"total_size", total_bytes()}}}, {"weight_map", weight_map}};
    file_write_atomic(dir + "/" + base_ + ".safetensors.index.json", idx.dump(2) + "\n");
  }
}

}  // namespace moe
