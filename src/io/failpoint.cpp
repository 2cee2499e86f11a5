#include "io/failpoint.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/signals.h"

namespace moe {

namespace {
struct Spec {
  std::string name;
  long at = 1;
  long hits = 0;
  int sig = SIGKILL;
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
      const std::string rest = r.name.substr(colon + 1);
      r.at = std::strtol(rest.c_str(), nullptr, 10);
      const size_t c2 = rest.find(':');
      if (c2 != std::string::npos) {
        const std::string sig = rest.substr(c2 + 1);
        r.sig = sig == "SIGTERM" ? SIGTERM : sig == "SIGINT" ? SIGINT : sig == "SIGHUP" ? SIGHUP : SIGKILL;
      }
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
  if (++s.hits != s.at) return;
  // Process-directed, as a user's kill: taken by io/signals.h's thread, which ends the
  // process (unless a training loop listens); this thread waits for that meanwhile.
  ::kill(::getpid(), s.sig);
  if (s.sig == SIGKILL || !signals_started() || signals_listening()) return;
  for (;;) ::usleep(1000);
}

}  // namespace moe
