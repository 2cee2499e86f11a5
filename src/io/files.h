// Small file helpers with the project's reliability rules: whole-file writes are
// atomic (temp file, fsync, rename, fsync of the directory) and every error is one
// line naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// The whole file. Regular files only (a FIFO or device is refused, never waited on),
// at most max_bytes. Throws "<path>: cannot read (...)", "<path>: not a regular file ...".
std::string file_read(const std::string& path, size_t max_bytes = SIZE_MAX);
// open(2) for reading, refusing (without blocking) anything but a regular file.
int open_regular(const std::string& path);
void file_write_atomic(const std::string& path, const std::string& bytes);
void file_copy_atomic(const std::string& from, const std::string& to);
bool path_exists(const std::string& path);
// Refuses, in one line (std::runtime_error), an output path that is `input`, lies inside
// it or contains it (after resolving symlinks and ".."): writing or replacing it would
// destroy what is being read. `what` names the input, e.g. "the checkpoint".
void refuse_overlap(const std::string& out, const std::string& input, const std::string& what);
bool is_dir(const std::string& path);
void make_dirs(const std::string& path);  // mkdir -p; throws naming the path
void fsync_dir(const std::string& dir);
// Moves a fully written directory into place: `to` is replaced if it exists
// (renamed aside first, then removed), and the parent directory is fsynced.
void dir_commit(const std::string& from, const std::string& to);
void remove_tree(const std::string& path);  // rm -rf, ignoring absence
// An exclusive, non-blocking flock(2) on the directory itself, held until the process
// ends (the kernel releases it on any death, kill -9 included). False when another
// process holds it; throws naming the path when the directory cannot be opened.
bool dir_lock(const std::string& dir);
// True when a process with this PID exists.
bool pid_alive(long pid);
// Removes the entries of `dir` whose name starts with one of `prefixes` and ends in the
// PID of a dead process ("<prefix>...-<pid>" or "<prefix>....<pid>"): temp and trash
// directories of killed writers. Returns the names removed.
std::vector<std::string> remove_stale_temps(const std::string& dir, const std::vector<std::string>& prefixes);
// A fresh, empty temp directory beside `out` ("OUT.tmp-<pid>", out normalised, e.g. no
// trailing slash), to be moved into place with dir_commit; the temp directories of
// dead writers to the same `out` are removed first.
std::string temp_dir_beside(const std::string& out);

// One file written in pieces that appears whole or not at all: the bytes go to
// "<path>.tmp.<pid>" beside it; commit() fsyncs it, renames it over `path` and fsyncs
// the directory. An AtomicFile destroyed before commit() removes its temp file. Errors
// are one line naming the path. `output`: a user's output file: its directory is
// created and the temps dead writers left for the same path are removed first.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path, bool output = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void pad_to(uint64_t alignment);  // zero bytes up to the next multiple of alignment
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace moe
