#include "core/assistant/intent_tools.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/assistant/core.h"
#include "core/json_text.h"

namespace llmassist::detail::assistant {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// A reason the model may give, for the record.
constexpr std::string_view kReasonSchema =
    R"({"type": "object", "properties": {"reason": {"type": "string", "description": )"
    R"("the contact's words, briefly"}}})";

// A tool of the assistant's own: it holds the assistant weakly.
class IntentTool : public Tool {
 public:
  IntentTool(std::weak_ptr<Core> core, ToolSpec spec, bool side_effects)
      : core_(std::move(core)), spec_(std::move(spec)), side_effects_(side_effects) {}

  [[nodiscard]] ToolSpec spec() const override { return spec_; }
  [[nodiscard]] bool has_side_effects() const override { return side_effects_; }

  void call(const ToolContext& context, const std::string& arguments, ToolCallback done) override {
    auto core = core_.lock();
    if (!core) {
      done(cancelled("the assistant is gone"));
      return;
    }
    done(run(*core, context, parse_json_text(arguments)));
  }

 protected:
  virtual Result<std::string> run(Core& core, const ToolContext& context,
                                  const json& arguments) = 0;

 private:
  std::weak_ptr<Core> core_;
  ToolSpec spec_;
  bool side_effects_;
};

class StopContact final : public IntentTool {
 public:
  explicit StopContact(std::weak_ptr<Core> core)
      : IntentTool(std::move(core),
                   {"stop_contact",
                    "The contact asks not to be written to any more (stop messaging me, "
                    "unsubscribe, leave me alone). Records it: no follow-up, reminder or campaign "
                    "message goes to them again; what they ask later is still answered. Confirm "
                    "it to them in your answer.",
                    std::string(kReasonSchema)},
                   /*side_effects=*/true) {}

 protected:
  Result<std::string> run(Core& core, const ToolContext& context, const json&) override {
    ChatChange change;
    change.opted_out = true;
    change.actor = core.ctx.worker;
    LLMASSIST_ASSIGN_OR_RETURN(const Chat chat,
                               core.ctx.parts.store->update_chat(context.chat.id, change));
    return dump({{"opted_out", chat.opted_out_at.has_value()}});
  }
};

class HandoffToHuman final : public IntentTool {
 public:
  explicit HandoffToHuman(std::weak_ptr<Core> core)
      : IntentTool(std::move(core),
                   {"handoff_to_human",
                    "The contact asks for a person (a human, an operator, a manager) or the "
                    "conversation needs one. Hands the chat over: an operator answers from now "
                    "on, and the contact is told so.",
                    std::string(kReasonSchema)},
                   /*side_effects=*/true) {}

 protected:
  Result<std::string> run(Core& core, const ToolContext& context, const json&) override {
    LLMASSIST_ASSIGN_OR_RETURN(const Chat chat, core.ctx.parts.store->get_chat(context.chat.id));
    core.inbound.handoff(chat, core.ctx.worker);
    return dump({{"handed_over", true},
                 {"note",
                  "An operator has the chat now and the contact was told. Add at most "
                  "one short sentence."}});
  }
};

class SendDocument final : public IntentTool {
 public:
  SendDocument(std::weak_ptr<Core> core, std::map<std::string, Attachment> documents)
      : IntentTool(std::move(core), spec_of(documents), /*side_effects=*/false),
        documents_(std::move(documents)) {}

 protected:
  Result<std::string> run(Core&, const ToolContext& context, const json& arguments) override {
    const auto it = arguments.find("document");
    if (it == arguments.end() || !it->is_string()) {
      return invalid_argument("name the document to send (\"document\")");
    }
    const auto doc = documents_.find(it->get<std::string>());
    if (doc == documents_.end()) {
      return not_found(fmt::format("there is no document \"{}\"; there are: {}",
                                   it->get<std::string>().substr(0, 64), names(documents_)));
    }
    std::error_code error;
    if (!std::filesystem::is_regular_file(doc->second.path, error)) {
      // The path is the server's business, not the model's.
      return unavailable(fmt::format("the document \"{}\" is missing on the server", doc->first));
    }
    Attachment a = doc->second;
    if (a.file_name.empty()) a.file_name = std::filesystem::path(a.path).filename().string();
    const std::string shown = a.file_name;
    context.attach(std::move(a));
    return dump({{"attached", shown}, {"note", "It goes out with your answer."}});
  }

 private:
  static std::string names(const std::map<std::string, Attachment>& documents) {
    std::string out;
    for (const auto& [name, doc] : documents) out += (out.empty() ? "" : ", ") + name;
    return out;
  }

  static ToolSpec spec_of(const std::map<std::string, Attachment>& documents) {
    json names = json::array();
    std::string described;
    for (const auto& [name, doc] : documents) {
      names.push_back(name);
      described += fmt::format("{}\"{}\"{}", described.empty() ? "" : ", ", name,
                               doc.caption.empty() ? "" : " (" + doc.caption + ")");
    }
    const json parameters = {{"type", "object"},
                             {"properties", {{"document", {{"type", "string"}, {"enum", names}}}}},
                             {"required", {"document"}}};
    return {
        "send_document",
        "Sends the contact a document, with your answer, when they ask for it: " + described + ".",
        dump(parameters)};
  }

  const std::map<std::string, Attachment> documents_;
};

bool document_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

}  // namespace

Result<std::vector<std::shared_ptr<Tool>>> intent_tools(std::weak_ptr<Core> core,
                                                        const AgentOptions& agent) {
  std::vector<std::shared_ptr<Tool>> out;
  if (agent.stop_contact) out.push_back(std::make_shared<StopContact>(core));
  if (agent.handoff_to_human) out.push_back(std::make_shared<HandoffToHuman>(core));
  if (!agent.documents.empty()) {
    for (const auto& [name, doc] : agent.documents) {
      if (!document_name(name)) {
        return invalid_argument(fmt::format(
            "agent.documents: \"{}\" is not a name the model can ask for (letters, digits, "
            "'_', '-', '.', 1 to 64)",
            name.substr(0, 64)));
      }
      if (doc.path.empty()) {
        return invalid_argument(fmt::format("agent.documents: \"{}\" has no path", name));
      }
    }
    out.push_back(std::make_shared<SendDocument>(core, agent.documents));
  }
  return out;
}

}  // namespace llmassist::detail::assistant
