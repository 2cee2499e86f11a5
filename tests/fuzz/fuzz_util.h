// Helpers shared by the libFuzzer harnesses: a per-process temp path for APIs that
// take a file, and the rule for what a harness tolerates.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace moe::fuzz {

// "$TMPDIR/moe-fuzz-<pid>/<name>" (the directory is created once and removed at exit).
std::string temp_path(const std::string& name);
// Writes exactly the bytes (no atomic rename: the harness owns the file). Aborts on
// an I/O error, which is the harness's problem, not a finding in the library.
void write_file(const std::string& path, const uint8_t* data, size_t size);

// Runs f. The library reports bad input as std::runtime_error or std::invalid_argument:
// those are the expected outcome and are swallowed. Anything else (another exception,
// a crash, a sanitizer report) escapes to libFuzzer and is a finding.
template <class F>
void tolerate_bad_input(F&& f) {
  try {
    f();
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace moe::fuzz

