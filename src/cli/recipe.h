// Run recipes: a JSON object of a command's flags (names without "--": {"preset":
// "tiny", "steps": 300, "lr": 0.001, "continue-data": true, ...}). `moe train --recipe
// FILE` takes every flag the command line does not give from it; every new run writes
// RUN/recipe.json, the recipe that reproduces it (docs/formats.md).
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::cli {

// Sets the options of `sub` named in the recipe at `path` that the command line did
// not give, as if given. Usage errors (one line, naming the file and the key): not a
// JSON object, an unknown flag (with the closest), a key in `refused`, a bad value.
void recipe_apply(CLI::App* sub, const std::string& path, const std::vector<std::string>& refused);

// A float as the shortest decimal that reads back as the same float (0.003, not
// 0.0030000000260770321), as a JSON number.
nlohmann::ordered_json recipe_number(float v);

}  // namespace moe::cli
