#include "train/progress.h"

#include <unistd.h>

#include <cmath>

namespace moe {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = long(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(int total, int every, FILE* out)
    : total_(total), every_(every), out_(out), tty_(isatty(fileno(out)) != 0) {}

void Progress::step(int step, float loss, float lr, double tps, double eta, const std::string& extra) {
  char stats[160];
  std::snprintf(stats, sizeof stats, "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %s", step, total_, loss, lr,
                tps, format_duration(eta).c_str());
  if (tty_) {
    const int width = 24;
    int filled = total_ > 0 ? int(double(width) * step / total_) : width;
    std::string bar(size_t(filled), '#');
    bar.resize(width, '.');
    std::fprintf(out_, "\r\033[K[%s] %s%s", bar.c_str(), stats, extra.c_str());
    std::fflush(out_);
    open_ = true;
  } else if (step % every_ == 0 || step == total_ || step == 1) {
    std::fprintf(out_, "%s%s\n", stats, extra.c_str());
    std::fflush(out_);
  }
}

void Progress::line(const std::string& text) {
  if (open_) std::fprintf(out_, "\n");
  open_ = false;
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void Progress::finish() {
  if (open_) std::fprintf(out_, "\n");
  open_ = false;
}

}  // namespace moe
