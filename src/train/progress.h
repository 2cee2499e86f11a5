// Training progress for people: on a terminal, one line redrawn in place with a
// bar, step, loss, tokens/s and ETA; otherwise a plain line every few steps.
#pragma once
#include <cstdio>
#include <string>

namespace moe {

class Progress {
 public:
  Progress(int total_steps, int plain_every, FILE* out = stderr);
  // extra: a short suffix (e.g. MoE routing summary, later).
  void step(int step, float loss, float lr, double tokens_per_s, double eta_s, const std::string& extra = "");
  void line(const std::string& text);  // a message on its own line
  void finish();

 private:
  int total_, every_;
  FILE* out_;
  bool tty_;
  bool open_ = false;  // a redrawn line is on screen
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace moe
