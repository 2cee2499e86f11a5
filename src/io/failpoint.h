// Crash points for reliability tests: failpoint("name") kills this process with
// SIGKILL (no cleanup, no destructors: a power cut as far as files go) when the
// environment variable MOE_FAILPOINT is "name" or "name:N" (the N-th time the point
// is reached, 1-based). Unset, it costs one cached lookup. The CLI tests use it to
// kill `moe train` inside a checkpoint write or a rotation and check what survives.
// "name:N:SIGTERM" (or SIGINT, SIGHUP) raises that signal there instead: a user's Ctrl-C
// or a scheduler's SIGTERM landing at a chosen moment of a write.
#pragma once

namespace moe {

void failpoint(const char* name);

}  // namespace moe
