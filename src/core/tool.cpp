#include "llmassist/tool.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/json_text.h"

namespace llmassist {
namespace {

using nlohmann::json;

class FunctionTool final : public Tool {
 public:
  FunctionTool(ToolSpec spec, bool side_effects, ToolHandler handler)
      : spec_(std::move(spec)), side_effects_(side_effects), handler_(std::move(handler)) {}

  ToolSpec spec() const override { return spec_; }
  bool has_side_effects() const override { return side_effects_; }
  void call(const ToolContext& context, const std::string& arguments, ToolCallback done) override {
    done(handler_(context, arguments));
  }

 private:
  const ToolSpec spec_;
  const bool side_effects_;
  const ToolHandler handler_;
};

}  // namespace

Status check_tool_spec(const ToolSpec& spec) {
  const bool good_name = !spec.name.empty() && spec.name.size() <= 64 &&
                         std::all_of(spec.name.begin(), spec.name.end(), [](unsigned char c) {
                           return std::isalnum(c) != 0 || c == '_' || c == '-';
                         });
  if (!good_name) {
    return invalid_argument(
        fmt::format("a tool's name must be 1 to 64 letters, digits, '_' or '-': \"{}\"",
                    spec.name.substr(0, 80)));
  }
  if (!spec.parameters.empty()) {
    const json p = detail::parse_json_text(spec.parameters);
    if (p.is_discarded() || !p.is_object()) {
      return invalid_argument(
          fmt::format("tool {}: its parameters must be a JSON object (a JSON schema)", spec.name));
    }
  }
  return Status();
}

Result<std::shared_ptr<Tool>> make_tool(ToolSpec spec, bool side_effects, ToolHandler handler) {
  LLMASSIST_RETURN_IF_ERROR(check_tool_spec(spec));
  if (!handler) return invalid_argument(fmt::format("tool {}: no handler", spec.name));
  return std::shared_ptr<Tool>(
      std::make_shared<FunctionTool>(std::move(spec), side_effects, std::move(handler)));
}

std::string tool_record_json(const ToolCall& call, ToolCallOutcome outcome,
                             const std::string& result_or_error) {
  json arguments = detail::parse_json_text(call.arguments);
  if (!arguments.is_object()) arguments = call.arguments;  // kept as the model sent it
  const char* status = outcome == ToolCallOutcome::kDone     ? "done"
                       : outcome == ToolCallOutcome::kFailed ? "failed"
                                                             : "deferred";
  json record = {{"call_id", call.id},
                 {"tool", call.name},
                 {"arguments", std::move(arguments)},
                 {"status", status}};
  record[outcome == ToolCallOutcome::kFailed ? "error" : "result"] = result_or_error;
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace llmassist
