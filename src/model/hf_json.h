// Reading fields of a Hugging Face config.json with errors that name the file and
// the field: "config.json: field 'n_embd' must be a positive integer, got "x"".
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace moe::hf {

// A required positive integer.
int req_int(const nlohmann::json& j, const char* key, const std::string& path);
// An optional integer (absent or null -> def).
int opt_int(const nlohmann::json& j, const char* key, int def, const std::string& path);
float opt_float(const nlohmann::json& j, const char* key, float def, const std::string& path);
bool opt_bool(const nlohmann::json& j, const char* key, bool def, const std::string& path);
std::optional<std::string> opt_string(const nlohmann::json& j, const char* key, const std::string& path);
// A float as the decimal it was written from (1e-5f -> 1e-05, not 9.9999997e-06).
double num(float f);
// A field's value for an error message: at most 40 characters, nested containers elided.
std::string shown(const nlohmann::json& v);
[[noreturn]] void fail(const std::string& path, const std::string& what);

}  // namespace moe::hf
