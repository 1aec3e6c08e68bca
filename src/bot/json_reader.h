// Internal: reads a configuration object field by field, with typed getters that report the
// JSON path of anything wrong ("$.providers[0].timeouts.total_ms: expected an integer, got a
// string") and a final check that names every key nobody asked about.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "llmassist/status.h"

namespace llmassist::detail {

// Parses a configuration text; a malformed one gives kInvalidArgument naming the position of
// the fault ("the config is not valid JSON: ... at line 3, column 7 ...").
Result<nlohmann::json> parse_config_json(std::string_view text);

// "a string", "a number", "an object"... for error messages.
std::string_view json_kind(const nlohmann::json& j);

class JsonObject {
 public:
  // Fails with kInvalidArgument when `j` is not an object.
  static Result<JsonObject> of(const nlohmann::json& j, std::string path);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string path_of(std::string_view key) const {
    return path_ + "." + std::string(key);
  }
  [[nodiscard]] bool has(std::string_view key);

  // Each getter marks `key` as known. Missing keys give std::nullopt (or `required` errors).
  Result<std::optional<std::string>> string(std::string_view key, bool required = false);
  Result<std::optional<double>> number(std::string_view key);
  Result<std::optional<std::int64_t>> integer(
      std::string_view key, std::int64_t min = std::numeric_limits<std::int64_t>::min(),
      std::int64_t max = std::numeric_limits<std::int64_t>::max());
  Result<std::optional<bool>> boolean(std::string_view key);
  Result<std::optional<std::vector<std::string>>> strings(std::string_view key);
  // The raw value of an object or array field (nullptr when missing); checks the kind.
  Result<const nlohmann::json*> object(std::string_view key);
  Result<const nlohmann::json*> array(std::string_view key);
  // Marks a key as known without reading it.
  void ignore(std::string_view key) { known_.insert(std::string(key)); }

  // kInvalidArgument naming the first key that no getter asked about.
  [[nodiscard]] Status check_unknown() const;

 private:
  JsonObject(const nlohmann::json* j, std::string path) : j_(j), path_(std::move(path)) {}
  const nlohmann::json* find(std::string_view key);
  Status wrong_type(std::string_view key, std::string_view expected) const;

  const nlohmann::json* j_;
  std::string path_;
  std::set<std::string> known_;
};

}  // namespace llmassist::detail
