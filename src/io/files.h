// Small file helpers with the project's reliability rules: whole-file writes are
// atomic (temp file, fsync, rename, fsync of the directory) and every error is one
// line naming the path.
#pragma once
#include <string>

namespace moe {

std::string file_read(const std::string& path);  // throws "<path>: cannot read (...)"
void file_write_atomic(const std::string& path, const std::string& bytes);
void file_copy_atomic(const std::string& from, const std::string& to);
bool path_exists(const std::string& path);
bool is_dir(const std::string& path);
void make_dirs(const std::string& path);  // mkdir -p; throws naming the path
void fsync_dir(const std::string& dir);
// Moves a fully written directory into place: `to` is replaced if it exists
// (renamed aside first, then removed), and the parent directory is fsynced.
void dir_commit(const std::string& from, const std::string& to);
void remove_tree(const std::string& path);  // rm -rf, ignoring absence

}  // namespace moe
