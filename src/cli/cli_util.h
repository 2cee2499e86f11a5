// Shared pieces of the command line: usage errors (exit 2), the one-line message for
// a CLI11 parse error (closest valid flag, the subcommand's help), and the signals
// that stop a training run cleanly.
#pragma once
#include <CLI/CLI.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "train/config.h"

namespace moe::cli {

// CLI::Range that tells a value that is not a number ("--lr: abc is not a number") from a
// number out of range (CLI::Range says "not in range" for both).
class InRange : public CLI::Validator {
 public:
  template <typename T>
  InRange(T min, T max) {
    std::stringstream d;
    d << CLI::detail::type_name<T>() << " in [" << min << " - " << max << "]";
    description(d.str());
    func_ = [min, max](std::string& in) -> std::string {
      std::stringstream range;
      range << in << " is not in range " << min << " to " << max;
      T v;
      if (!CLI::detail::lexical_cast(in, v)) {
        // An integer too large for the type (--vocab-size 2147483648) is out of range, not "not an integer".
        long double w;
        if (std::is_integral_v<T> && in.find_first_not_of("+-0123456789") == std::string::npos &&
            CLI::detail::lexical_cast(in, w))
          return range.str();
        return in + (std::is_integral_v<T> ? " is not an integer" : " is not a number");
      }
      if (v < min || v > max) return range.str();
      return std::string();
    };
  }
};

// Every floating-point flag given to `app` or its parsed subcommands is a finite number:
// "nan" and "inf" pass CLI11's range checks (NaN compares false), so they are refused
// here, for every command at once (CLI::ValidationError naming the flag: exit 2).
void refuse_nonfinite_flags(const CLI::App& app);

// --compute: "f32" | "bf16" as given, or "auto": the machine's fastest (perf/peak.h
// compute_auto); *why (when given) gets "auto: <reason>" then, empty otherwise.
Compute compute_from_flag(const std::string& value, std::string* why = nullptr);

// Exit codes (README, "Exit codes"): 0 success, 1 bad data or I/O (a file, dataset or
// checkpoint that is broken or does not fit), 2 usage (a flag, a value, a combination
// of flags), 128 + N stopped by signal N after saving (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
inline constexpr int kExitBadData = 1, kExitUsage = 2;

// A usage error: the command line itself is wrong. main() exits 2 with its message.
// std::invalid_argument messages that start with a flag ("--seq ...") count as usage
// errors too: library code (TrainConfig::validate) names the flag it checks.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
bool is_usage_error(const std::exception& e);

// The candidate closest to `word` by edit distance, or "" when none is close enough
// to be a likely typo.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// "moe train" for the train subcommand.
std::string command_path(const CLI::App* app);

// The deepest subcommand the parser reached (the app itself when none).
const CLI::App* deepest_subcommand(const CLI::App& app);

// The one-line message for a parse error: for an unknown flag, the closest flag of
// the subcommand (or a global one), and in every case where its help is.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e);

// "SIGTERM", "SIGINT (Ctrl-C)", ...: how the stop message names a signal that stopped
// a run (io/signals.h records it while training listens).
const char* stop_signal_name(int sig);

}  // namespace moe::cli
