#include "cli/cli_util.h"

#include "perf/peak.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>

namespace moe::cli {

void refuse_nonfinite_flags(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_type_name().rfind("FLOAT", 0) != 0) continue;  // "FLOAT" and its validators' words
    for (const std::string& v : opt->results()) {
      double x = 0;
      if (CLI::detail::lexical_cast(v, x) && !std::isfinite(x))
        throw CLI::ValidationError(opt->get_name(), v + " is not a finite number");
    }
  }
  for (const CLI::App* sub : app.get_subcommands()) refuse_nonfinite_flags(*sub);
}

Compute compute_from_flag(const std::string& value, std::string* why) {
  if (why) why->clear();
  if (value != "auto") return compute_parse(value);
  const AutoCompute& a = compute_auto();
  if (why) *why = "auto: " + a.why;
  return a.bf16 ? Compute::BF16 : Compute::F32;
}

bool is_usage_error(const std::exception& e) {
  if (dynamic_cast<const UsageError*>(&e)) return true;
  return dynamic_cast<const std::invalid_argument*>(&e) && std::strncmp(e.what(), "--", 2) == 0;
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The long names of an app's options ("--steps"), without --help.
std::vector<std::string> flag_names(const CLI::App* app) {
  std::vector<std::string> out;
  for (const CLI::Option* o : app->get_options()) {
    for (const std::string& n : o->get_lnames())
      if (n != "help") out.push_back("--" + n);
  }
  return out;
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // A typo: a few edits, fewer than a third of the word; or a prefix of the flag.
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  if (best_d <= limit) return best;
  for (const std::string& c : candidates)
    if (word.size() >= 4 && c.rfind(word, 0) == 0) return c;
  return "";
}

std::string command_path(const CLI::App* app) {
  std::string path;
  for (const CLI::App* a = app; a; a = a->get_parent())
    path = a->get_parent() ? " " + a->get_name() + path : "moe" + path;
  return path;
}

const CLI::App* deepest_subcommand(const CLI::App& app) {
  const CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) return cur;
    cur = subs.front();
  }
}

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* sub = deepest_subcommand(app);
  const std::string help = command_path(sub) + " --help";
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    std::vector<std::string> extras = sub->remaining(true);
    if (extras.empty()) extras = app.remaining(true);
    std::string first = extras.empty() ? "" : extras.front();
    if (!first.empty() && first[0] == '-') {
      const std::string flag = first.substr(0, first.find('='));
      std::vector<std::string> names = flag_names(sub);
      if (sub != &app)
        for (const std::string& g : flag_names(&app)) names.push_back(g);
      const std::string near = closest(flag, names);
      return "unknown flag " + flag + " for " + command_path(sub) + (near.empty() ? "" : "; did you mean " + near + "?") +
             " (see " + help + ")";
    }
    if (!first.empty() && sub == &app) {
      std::vector<std::string> names;
      for (const CLI::App* s : app.get_subcommands({})) names.push_back(s->get_name());
      const std::string near = closest(first, names);
      return "unknown command " + first + (near.empty() ? "" : "; did you mean " + near + "?") + " (see moe --help)";
    }
    if (!first.empty()) return "unexpected argument " + first + " for " + command_path(sub) + " (see " + help + ")";
  }
  return std::string(e.what()) + " (see " + help + ")";
}

// ---------------------------------------------------------------- signals

const char* stop_signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT (Ctrl-C)";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

}  // namespace moe::cli
