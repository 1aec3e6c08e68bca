// The Assistant's outbox: the only path for answers. Claims `approved` replies, sends each
// through the transport of its chat's channel, and deals with what a send's failure calls for
// (a retry with backoff, a blocked chat, an answer given up). A send's success goes to the
// completion writer, which marks it sent. Also the notices the assistant sends on its own.
//
// Thread-safety: any method from any thread.
#pragma once

#include <string>
#include <vector>

#include "core/assistant/context.h"

namespace llmassist::detail::assistant {

struct Core;

class Outbox {
 public:
  explicit Outbox(Core& core) : core_(core) {}
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // `chats`: only these chats' answers; empty: any chat's. `retake_own`: also the answers this
  // instance's name holds (a previous run's, at start-up). Otherwise never: an answer this
  // process is sending is held under its name, and claiming it again could send it twice.
  void start_sends(const std::vector<ChatId>& chats, bool retake_own = false);
  // A claim of answers to send, each the oldest unfinished reply of its chat.
  [[nodiscard]] ClaimRequest send_claim(std::vector<ChatId> chats, int limit, bool retake_own,
                                        const std::string& channel) const;
  // `known`: the reply's chat as read in the transaction that claimed the reply, if at hand.
  void send(Reply reply, const Chat* known = nullptr);

  // A send's outcome: when it went out, the change that marks it sent (true); otherwise
  // (false) what a failure calls for is done here.
  bool send_step(const Reply& reply, const Result<SentMessage>& result, ReplyChange& change);
  // After the send's outcome is written: the chat's next answer or question may go on; the
  // worker looks unless `continued` (the write claimed them already).
  void finish(const Reply& reply, bool continued = false);

  // A notice the bot sends on its own: straight to the chat, kept in the log as a system line
  // (the memory leaves those out of the prompt).
  void notify(const Chat& chat, const std::string& text);

 private:
  // An approved reply's deferred tool calls (review policy): run, then cleared in the store
  // with the files they attached added, then the answer delivered.
  void run_deferred(Reply reply, const Chat& chat, ChatTransport* transport);
  // Hands the answer (its text, its files, the handoff button) to the chat's transport.
  void deliver(const Reply& reply, const Chat& chat, ChatTransport* transport);
  void send_failed(const Reply& reply, const Status& status);
  void give_up(const Reply& reply, const std::string& why);
  void mark_undeliverable(const Reply& reply, const std::string& why);

  Core& core_;
};

}  // namespace llmassist::detail::assistant
