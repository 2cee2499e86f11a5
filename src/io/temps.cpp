#include "io/temps.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace moe {

namespace {

// Fixed slots, no allocation: the handler reads them. A slot's path is written before
// `used` is set and cleared after `used` is reset.
constexpr int kSlots = 64;
constexpr size_t kPathMax = 4096;
char g_paths[kSlots][kPathMax];
std::atomic<bool> g_used[kSlots];
std::mutex g_mu;  // between registrations (never taken by the handler)

// rm -rf of `name` relative to directory fd `at`, with system calls only. Depth-limited:
// our temps hold files, or directories of files.
void remove_at(int at, const char* name, int depth) {
  if (::unlinkat(at, name, 0) == 0 || errno == ENOENT) return;
  if (depth > 8) return;
  const int fd = ::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buf[4096];
  for (int pass = 0; pass < 64; pass++) {  // entries may be unlinked under a running reader
    const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct Dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const Dirent64* d = reinterpret_cast<const Dirent64*>(buf + off);
      off += d->reclen;
      if (std::strcmp(d->name, ".") == 0 || std::strcmp(d->name, "..") == 0) continue;
      remove_at(fd, d->name, depth + 1);
    }
  }
  ::close(fd);
  ::unlinkat(at, name, AT_REMOVEDIR);
}

}  // namespace

void temp_register(const std::string& path) {
  if (path.size() >= kPathMax) return;  // cannot be held: it is left for remove_stale_temps
  std::lock_guard<std::mutex> lock(g_mu);
  for (int i = 0; i < kSlots; i++)
    if (!g_used[i].load(std::memory_order_relaxed)) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      g_used[i].store(true, std::memory_order_release);
      return;
    }
}

void temp_unregister(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (int i = 0; i < kSlots; i++)
    if (g_used[i].load(std::memory_order_relaxed) && path == g_paths[i]) {
      g_used[i].store(false, std::memory_order_release);
      g_paths[i][0] = '\0';
    }
}

void temps_remove_all() {
  for (int i = 0; i < kSlots; i++)
    if (g_used[i].load(std::memory_order_acquire))
      for (int attempt = 0; attempt < 3; attempt++) {  // a writer thread may add a file meanwhile
        remove_at(AT_FDCWD, g_paths[i], 0);
        if (::access(g_paths[i], F_OK) != 0) break;
      }
}


}  // namespace moe
