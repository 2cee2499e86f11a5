#include "io/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

namespace moe {

namespace {
struct Spec {
  std::string name;
  long at = 1;
  long hits = 0;
  bool on = false;
};
Spec& spec() {
  static Spec s = [] {
    Spec r;
    const char* v = std::getenv("MOE_FAILPOINT");
    if (!v || !*v) return r;
    r.on = true;
    r.name = v;
    const size_t colon = r.name.find(':');
    if (colon != std::string::npos) {
      r.at = std::strtol(r.name.c_str() + colon + 1, nullptr, 10);
      r.name.resize(colon);
    }
    return r;
  }();
  return s;
}
}  // namespace

void failpoint(const char* name) {
  Spec& s = spec();
  if (!s.on || s.name != name) return;
  if (++s.hits == s.at) ::raise(SIGKILL);
}

}  // namespace moe
