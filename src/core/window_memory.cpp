#include "llmassist/core/window_memory.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/prompt_parts.h"
#include "core/utf8.h"

namespace llmassist {
namespace {

class WindowMemory final : public MemoryManager {
 public:
  WindowMemory(std::shared_ptr<MessageStore> store, WindowMemoryOptions options)
      : store_(std::move(store)), options_(std::move(options)) {}

  Result<Context> build_context(const ContextRequest& request) override {
    LLMASSIST_ASSIGN_OR_RETURN(
        auto recent,
        store_->dialog_window(request.session_id, options_.window, request.upto_message_id));
    std::vector<const Message*> dialog;
    for (const auto& m : recent) dialog.push_back(&m);
    // Drop the oldest until the dialog fits the budget; the question itself always stays.
    std::size_t chars = 0;
    for (const auto* m : dialog) chars += detail::utf8_length(m->text);
    std::size_t dropped = 0;
    while (dialog.size() > 1 && chars > options_.max_chars) {
      chars -= detail::utf8_length(dialog.front()->text);
      dialog.erase(dialog.begin());
      ++dropped;
    }
    Context out;
    const std::string& system =
        request.system_prompt.empty() ? options_.system_prompt : request.system_prompt;
    if (!system.empty()) out.messages.push_back({Role::kSystem, system});
    for (const auto* m : dialog) out.messages.push_back({m->role, m->text});
    out.window_messages = static_cast<int>(dialog.size());
    if (auto redraft = detail::redraft_instruction(request)) out.messages.push_back(*redraft);
    if (dropped > 0) out.dropped.push_back(fmt::format("{} oldest messages", dropped));
    out.estimated_tokens = detail::estimate_prompt_tokens(out.messages);
    return out;
  }

  void observe(const Message&) override {}  // nothing to update: the store is the memory

 private:
  const std::shared_ptr<MessageStore> store_;
  const WindowMemoryOptions options_;
};

}  // namespace

Result<std::unique_ptr<MemoryManager>> make_window_memory(std::shared_ptr<MessageStore> store,
                                                          WindowMemoryOptions options) {
  if (!store) return invalid_argument("the window memory needs a store");
  if (options.window < 1 || options.window > 200) {
    return invalid_argument(
        fmt::format("the memory window must be 1..200, got {}", options.window));
  }
  return std::unique_ptr<MemoryManager>(new WindowMemory(std::move(store), std::move(options)));
}

}  // namespace llmassist
