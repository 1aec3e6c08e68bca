#include "bot/json_reader.h"

#include <fmt/format.h>

#include "core/json_text.h"

namespace llmassist::detail {

using nlohmann::json;

Result<json> parse_config_json(std::string_view text) {
  if (holds_nul(text)) {
    return invalid_argument("the config is not valid JSON: it holds a NUL byte");
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return invalid_argument(fmt::format("the config is not valid JSON: {}", e.what()));
  }
}

std::string_view json_kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "a list";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    default:
      return "a value of another kind";
  }
}

Result<JsonObject> JsonObject::of(const json& j, std::string path) {
  if (!j.is_object()) {
    return invalid_argument(fmt::format("{}: expected an object, got {}", path, json_kind(j)));
  }
  return JsonObject(&j, std::move(path));
}

bool JsonObject::has(std::string_view key) { return j_->contains(key); }

const json* JsonObject::find(std::string_view key) {
  known_.insert(std::string(key));
  auto it = j_->find(key);
  return it == j_->end() ? nullptr : &*it;
}

Status JsonObject::wrong_type(std::string_view key, std::string_view expected) const {
  return invalid_argument(fmt::format("{}: expected {}, got {}", path_of(key), expected,
                                      json_kind(j_->at(std::string(key)))));
}

Result<std::optional<std::string>> JsonObject::string(std::string_view key, bool required) {
  const json* v = find(key);
  if (v == nullptr) {
    if (required) return invalid_argument(fmt::format("{}: required", path_of(key)));
    return std::optional<std::string>();
  }
  if (!v->is_string()) return wrong_type(key, "a string");
  return std::optional<std::string>(v->get<std::string>());
}

Result<std::optional<double>> JsonObject::number(std::string_view key) {
  const json* v = find(key);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return wrong_type(key, "a number");
  return std::optional<double>(v->get<double>());
}

Result<std::optional<std::int64_t>> JsonObject::integer(std::string_view key, std::int64_t min,
                                                        std::int64_t max) {
  const json* v = find(key);
  if (v == nullptr) return std::optional<std::int64_t>();
  if (!v->is_number_integer()) return wrong_type(key, "an integer");
  if (v->is_number_unsigned() &&
      v->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return invalid_argument(fmt::format("{}: {} is out of range", path_of(key), v->dump()));
  }
  const auto value = v->get<std::int64_t>();
  if (value < min || value > max) {
    return invalid_argument(
        fmt::format("{}: {} is out of range ({}..{})", path_of(key), value, min, max));
  }
  return std::optional<std::int64_t>(value);
}

Result<std::optional<bool>> JsonObject::boolean(std::string_view key) {
  const json* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return wrong_type(key, "true or false");
  return std::optional<bool>(v->get<bool>());
}

Result<std::optional<std::vector<std::string>>> JsonObject::strings(std::string_view key) {
  const json* v = find(key);
  if (v == nullptr) return std::optional<std::vector<std::string>>();
  if (!v->is_array()) return wrong_type(key, "a list of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) {
      return invalid_argument(
          fmt::format("{}[{}]: expected a string, got {}", path_of(key), i, json_kind((*v)[i])));
    }
    out.push_back((*v)[i].get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<const json*> JsonObject::object(std::string_view key) {
  const json* v = find(key);
  if (v != nullptr && !v->is_object()) return wrong_type(key, "an object");
  return v;
}

Result<const json*> JsonObject::array(std::string_view key) {
  const json* v = find(key);
  if (v != nullptr && !v->is_array()) return wrong_type(key, "a list");
  return v;
}

Status JsonObject::check_unknown() const {
  for (auto it = j_->begin(); it != j_->end(); ++it) {
    if (!known_.count(it.key())) {
      return invalid_argument(fmt::format("{}: unknown key", path_of(it.key())));
    }
  }
  return Status();
}

}  // namespace llmassist::detail
