// The Assistant's drafting: claims replies to draft, builds each one's prompt and asks the
// model, shows the typing indicator and renews the claims of drafts in the making (one sweep
// over them all, run by the worker), and stores what cannot be drafted (failed, given back).
// A draft's outcome goes to the completion writer, which stores it.
//
// Thread-safety: any method from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/assistant/context.h"
#include "core/assistant/tool_loop.h"
#include "llmassist/cancellation.h"

namespace llmassist::detail::assistant {

struct Core;

class Drafting {
 public:
  explicit Drafting(Core& core) : core_(core) {}
  Drafting(const Drafting&) = delete;
  Drafting& operator=(const Drafting&) = delete;

  // New and rejected replies; `chats`: only these chats' replies; empty: any chat's.
  void start_drafts(const std::vector<ChatId>& chats);
  // Claims replies in `from` for `who` on every channel served, and drafts them.
  void claim_and_draft(ReplyStatus from, const std::string& who, const std::vector<ChatId>& chats);
  // A claim of replies in `from` to draft, each the oldest unfinished reply of its chat (an
  // answer on its way does not hold it back).
  [[nodiscard]] ClaimRequest draft_claim(ReplyStatus from, const std::string& who,
                                         std::vector<ChatId> chats, int limit, bool retake_own,
                                         const std::string& channel) const;
  // `known`: the reply's chat when the caller has it at hand, to save reading it again.
  void draft(Reply reply, const Chat* known = nullptr);

  // Whether reply `id` is being drafted here.
  [[nodiscard]] bool in_flight(ReplyId id);

  // A draft that came back: the change that stores it (true), or (false) what its failure
  // calls for is done here.
  bool draft_step(const Reply& reply, const Result<Completion>& result, const DraftExtras& extras,
                  ReplyChange& change);
  // After the draft's outcome is written: the chat may have an answer to send, or its next
  // question to draft; the worker looks unless `continued` (the write claimed them already).
  void finish(const Reply& reply, bool continued = false);
  // Typing indicators and claims' renewals that came due by `now`.
  void sweep(MonotonicClock::time_point now);
  // Cancels the drafts in the making (at stop()).
  void cancel_all();

 private:
  // The prompt is built: asks the model (or gives the reply back when it could not be built).
  void ask(const Reply& reply, const Chat& chat, Result<llmassist::Context> context,
           const std::shared_ptr<CancelToken>& token);
  // kAnswerTogether: the later questions of the chat, still `new`, are answered by this reply.
  MessageId merge_queued(const Reply& reply);
  void fail(const Reply& reply, const Status& why);
  // The draft could not even start (the store failed): back to `new` for another try.
  void give_back(const Reply& reply);

  // A draft in the making: what stop() cancels, and what the sweep needs once it began.
  struct Record {
    std::shared_ptr<CancelToken> token;
    std::shared_ptr<std::atomic<bool>> answered;  // set by the LLM's callback; null: not begun
    ChatTransport* transport = nullptr;           // the chat's
    std::string external_id;                      // the chat, in the transport's terms
    std::string actor;                            // the claim to renew
    std::string memory_used;  // memory_used_json() of its context, for the draft's audit event
    MonotonicClock::time_point next_typing;
    MonotonicClock::time_point next_renewal;
  };

  Core& core_;
  std::mutex mu_;
  std::map<ReplyId, Record> drafting_;  // guarded by mu_
};

}  // namespace llmassist::detail::assistant
