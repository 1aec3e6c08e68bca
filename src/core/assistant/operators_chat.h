// The Assistant's operators' chat (AssistantOptions::operator_chat_id, on the first transport):
// drafts are posted there with Approve / Edit / Reject buttons, failures and handoff messages
// too; a listed operator's button or reply there is a decision (through the ModerationQueue),
// or an answer relayed to a user in operator mode. Anyone else there is refused.
//
// Thread-safety: any method from any thread.
#pragma once

#include <string>
#include <vector>

#include "core/assistant/context.h"

namespace llmassist::detail::assistant {

struct Core;

class OperatorsChat {
 public:
  explicit OperatorsChat(Core& core) : core_(core) {}
  OperatorsChat(const OperatorsChat&) = delete;
  OperatorsChat& operator=(const OperatorsChat&) = delete;

  // Whether `e`, delivered by the transport of `channel`, comes from the operators' chat.
  [[nodiscard]] bool is_from(const InboundEvent& e, std::string_view channel) const;
  // An event from the operators' chat: a button or a message.
  Status on_event(const InboundEvent& e);
  // A pending draft, for the operators to decide on.
  void post_draft(const Reply& reply, const Chat& chat);
  // Posts to the operators' chat and remembers what the post is about, so that a reply to it
  // can be routed ("reply:<id>" or "chat:<id>").
  void post(std::string text, std::string about, std::vector<std::vector<Button>> buttons);

 private:
  Status on_callback(const InboundEvent& e);
  Status on_message(const InboundEvent& e);
  // Whether `e`'s sender may decide; when not, says so in the log.
  bool is_operator(const InboundEvent& e, std::string_view what) const;
  // An operator's decision taken here: the reply's chat has work.
  Status decided(const Result<Reply>& r);
  void answer(const InboundEvent& e, const std::string& text);

  Core& core_;
};

}  // namespace llmassist::detail::assistant
