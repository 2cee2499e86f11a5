// Streaming text with stop strings: text grows as tokens are decoded; what is safe to
// print is everything before the first stop string, minus a tail that could still
// become the start of one.
#pragma once
#include <string>
#include <vector>

namespace moe::cli {

struct StopCut {
  size_t printable = 0;  // bytes of text that may be printed now
  bool stop = false;     // a stop string was found: text ends at `printable`
};

inline StopCut stop_cut(const std::string& text, const std::vector<std::string>& stops) {
  StopCut c{text.size(), false};
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    const size_t at = text.find(s);
    if (at != std::string::npos && (!c.stop || at < c.printable)) c = {at, true};
  }
  if (c.stop) return c;
  for (const std::string& s : stops)  // hold back a suffix that is a prefix of a stop string
    if (!s.empty())
      for (size_t k = std::min(s.size() - 1, text.size()); k > 0; k--)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        c.printable = std::min(c.printable, text.size() - k);
        break;
      }
  return c;
}

}  // namespace moe::cli
