#include "io/files.h"

#include "io/signals.h"
#include "io/temps.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <csignal>
#include <stdexcept>

namespace moe {

namespace fs = std::filesystem;

static std::runtime_error err(const std::string& path, const std::string& what, int e) {
  return std::runtime_error(path + ": " + what + (e ? std::string(" (") + std::strerror(e) + ")" : ""));
}

int open_regular(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw err(path, "cannot read", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw err(path, "cannot stat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw err(path, std::string("not a regular file (") + (S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a special file") + ")", 0);
  }
  return fd;
}

std::string file_read(const std::string& path, size_t max_bytes) {
  int fd = open_regular(path);
  struct stat st;
  ::fstat(fd, &st);
  if (uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    throw err(path, "is " + std::to_string(st.st_size) + " bytes, more than the " + std::to_string(max_bytes) +
                        " expected of this file", 0);
  }
  std::string out(size_t(st.st_size), '\0');
  size_t off = 0;
  while (off < out.size()) {
    ssize_t r = ::read(fd, out.data() + off, out.size() - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      ::close(fd);
      throw err(path, r < 0 ? "read failed" : "file shrank while being read", e);
    }
    off += size_t(r);
  }
  ::close(fd);
  return out;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw err(dir, "cannot open directory for fsync", errno);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) throw err(dir, "fsync of directory failed", e);
}

void file_write_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void file_copy_atomic(const std::string& from, const std::string& to) { file_write_atomic(to, file_read(from)); }

void refuse_overlap(const std::string& out, const std::string& input, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code eo, ei;
  const fs::path o = fs::weakly_canonical(fs::path(out), eo), i = fs::weakly_canonical(fs::path(input), ei);
  auto within = [](const fs::path& a, const fs::path& b) {  // a is b or inside b
    auto m = std::mismatch(b.begin(), b.end(), a.begin(), a.end());
    return m.first == b.end() || (std::next(m.first) == b.end() && m.first->empty());  // "dir/" = "dir"
  };
  if (eo) throw std::runtime_error(out + ": cannot resolve the path (" + eo.message() + ")");
  if (ei) throw std::runtime_error(input + ": cannot resolve the path (" + ei.message() + ")");
  if (within(o, i) || within(i, o))
    throw std::runtime_error("--out " + out + ": overlaps " + what + " " + input + " (it would be replaced; give another --out)");
}

bool dir_lock(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(dir + ": cannot open the directory to lock it (" + std::strerror(errno) + ")");
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;  // fd stays open: the lock lives as long as we do
  const int err = errno;
  ::close(fd);
  if (err == EWOULDBLOCK) return false;
  throw std::runtime_error(dir + ": cannot lock the directory (" + std::strerror(err) + ")");
}

bool path_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot create directory (" + ec.message() + ")");
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  temp_unregister(path);
}

void dir_commit(const std::string& from, const std::string& to) {
  // No signal between moving the old output aside and the new one into place (it would
  // remove `from`, the finished output, and leave the old one aside): one that comes
  // meanwhile ends the process after the commit.
  SignalsDeferred no_signal_here;
  std::string aside;
  if (path_exists(to)) {
    // Hidden beside it, out of the readers' namespace; named so that a later run can
    // tell a dead writer's leftover (remove_stale_temps) by its PID.
    const fs::path t(to);
    aside = (t.parent_path() / (".old-" + t.filename().string() + "-" + std::to_string(::getpid()))).string();
    if (::rename(to.c_str(), aside.c_str()) != 0) throw err(to, "cannot move the old directory aside", errno);
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    int e = errno;
    if (!aside.empty()) ::rename(aside.c_str(), to.c_str());
    throw err(to, "cannot move " + from + " into place", e);
  }
  temp_unregister(from);
  fsync_dir(fs::path(to).parent_path().string());
  if (!aside.empty()) remove_tree(aside);
}

}  // namespace moe

namespace moe {

bool pid_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

std::vector<std::string> remove_stale_temps(const std::string& dir, const std::vector<std::string>& prefixes) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    for (const std::string& pre : prefixes) {
      if (n.rfind(pre, 0) != 0) continue;
      // The writer's PID is the name's last '-' or '.' separated field.
      const size_t sep = n.find_last_of("-.");
      if (sep == std::string::npos || sep + 1 >= n.size()) break;
      char* end = nullptr;
      const long pid = std::strtol(n.c_str() + sep + 1, &end, 10);
      if (*end != 0 || pid <= 0) break;
      if (pid == long(::getpid()) || pid_alive(pid)) break;
      remove_tree(e.path().string());
      removed.push_back(n);
      break;
    }
  }
  return removed;
}

std::string temp_dir_beside(const std::string& out) {
  const fs::path o(out);
  const std::string parent = o.parent_path().empty() ? "." : o.parent_path().string();
  make_dirs(parent);
  remove_stale_temps(parent, {o.filename().string() + ".tmp-"});
  const std::string tmp = out + ".tmp-" + std::to_string(::getpid());
  remove_tree(tmp);
  temp_register(tmp);  // before it exists: a signal from here on removes it
  make_dirs(tmp);
  return tmp;
}

AtomicFile::AtomicFile(std::string path, bool output) : path_(std::move(path)) {
  const fs::path o(path_);
  if (output) {
    const std::string parent = o.parent_path().empty() ? "." : o.parent_path().string();
    make_dirs(parent);
    remove_stale_temps(parent, {o.filename().string() + ".tmp."});
  }
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  temp_register(tmp_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    temp_unregister(tmp_);
    throw err(path_, "cannot create " + tmp_, errno);
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
  temp_unregister(tmp_);
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd_, p + done, std::min<size_t>(n - done, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw err(path_, "write to " + tmp_ + " failed", w < 0 ? errno : ENOSPC);
    done += size_t(w);
  }
  size_ += n;
}

void AtomicFile::pad_to(uint64_t alignment) {
  static const char zeros[256] = {};
  const uint64_t pad = (alignment - size_ % alignment) % alignment;
  if (pad > sizeof(zeros)) throw std::logic_error("AtomicFile::pad_to: alignment above 256");
  write(zeros, size_t(pad));
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw err(path_, "fsync of " + tmp_ + " failed", errno);
  if (::close(fd_) != 0) {
    int e = errno;
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw err(path_, "close of " + tmp_ + " failed", e);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_.c_str());
    throw err(path_, "rename from " + tmp_ + " failed", e);
  }
  const std::string parent = fs::path(path_).parent_path().string();
  fsync_dir(parent.empty() ? "." : parent);
}

}  // namespace moe
