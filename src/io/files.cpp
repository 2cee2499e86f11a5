#include "io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moe {

namespace fs = std::filesystem;

static std::runtime_error err(const std::string& path, const std::string& what, int e) {
  return std::runtime_error(path + ": " + what + (e ? std::string(" (") + std::strerror(e) + ")" : ""));
}

std::string file_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw err(path, "cannot read", errno);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw err(path, "cannot create " + tmp, errno);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw err(path, "write failed", e);
    }
    off += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw err(path, "fsync/close failed", e);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw err(path, "rename failed", e);
  }
  fsync_dir(fs::path(path).parent_path().string());
}

void file_copy_atomic(const std::string& from, const std::string& to) { file_write_atomic(to, file_read(from)); }

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
}

void dir_commit(const std::string& from, const std::string& to) {
  std::string aside;
  if (path_exists(to)) {
    aside = to + ".old." + std::to_string(::getpid());
    if (::rename(to.c_str(), aside.c_str()) != 0) throw err(to, "cannot move the old directory aside", errno);
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    int e = errno;
    if (!aside.empty()) ::rename(aside.c_str(), to.c_str());
    throw err(to, "cannot move " + from + " into place", e);
  }
  fsync_dir(fs::path(to).parent_path().string());
  if (!aside.empty()) remove_tree(aside);
}

}  // namespace moe
