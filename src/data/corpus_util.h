// Helpers shared by the corpus readers (corpus.cpp, corpus_named.cpp): not part of the
// data layer's interface.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "data/corpus.h"

namespace moe {

struct CmdResult {
  int status = -1;  // exit status, -1 when it did not exit normally
  std::string out;
};
// Runs a shell command and returns its standard output.
CmdResult run_command(const std::string& cmd);
bool executable(const char* path);
CorpusSource source_of(const std::string& name, std::string_view raw);

std::string_view trim(std::string_view s);                  // whitespace and newlines at both ends
std::vector<std::string_view> split_lines(std::string_view s);
void append_collapsed(std::string& out, std::string_view s);  // runs of whitespace as one space

}  // namespace moe
