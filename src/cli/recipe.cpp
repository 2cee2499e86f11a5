#include "cli/recipe.h"

#include <charconv>

#include "cli/cli_util.h"
#include "io/files.h"

namespace moe::cli {

void recipe_apply(CLI::App* sub, const std::string& path, const std::vector<std::string>& refused) {
  std::string text;
  try {
    text = file_read(path);
  } catch (const std::exception& e) {
    throw UsageError(std::string("--recipe: ") + e.what());
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw UsageError("--recipe " + path + ": not a JSON object of flags ({\"steps\": 300, ...})");
  std::vector<std::string> names;
  for (const CLI::Option* o : sub->get_options())
    for (const std::string& n : o->get_lnames()) names.push_back(n);
  for (const auto& [key, value] : j.items()) {
    const std::string flag = "--" + key;
    CLI::Option* opt = nullptr;
    try {
      opt = sub->get_option(flag);
    } catch (const CLI::OptionNotFound&) {
    }
    if (!opt || key == "help" || std::find(refused.begin(), refused.end(), key) != refused.end()) {
      std::vector<std::string> flags;
      for (const std::string& n : names)
        if (n != "help" && std::find(refused.begin(), refused.end(), n) == refused.end()) flags.push_back("--" + n);
      const std::string near = opt ? "" : closest(flag, flags);
      throw UsageError("--recipe " + path + ": \"" + key + "\" is not a flag a recipe can set" +
                       (near.empty() ? "" : "; did you mean \"" + near.substr(2) + "\"?"));
    }
    if (opt->count() > 0) continue;  // the command line wins
    std::string v;
    if (value.is_string()) v = value.get<std::string>();
    else if (value.is_boolean()) v = value.get<bool>() ? "true" : "false";
    else if (value.is_number()) v = value.dump();
    else throw UsageError("--recipe " + path + ": \"" + key + "\" must be a string, number or boolean");
    if (value.is_boolean() && !value.get<bool>()) continue;  // a flag left off
    try {
      opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::ParseError& e) {
      throw UsageError("--recipe " + path + ": \"" + key + "\": " + e.what());
    }
  }
}

nlohmann::ordered_json recipe_number(float v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return nlohmann::ordered_json::parse(std::string(buf, r.ptr));
}

}  // namespace moe::cli
