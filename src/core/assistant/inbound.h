// The Assistant's inbound handling: what the transports deliver, stored before anything else
// (a run of users' questions in one transaction), then acted on: a question wakes the worker
// for its draft, /start greets and opens a session, /human and the button hand the chat to a
// person (and /bot back), a message in operator mode goes to the operators, a user writing
// faster than the rate limit is told once a window. Events of the operators' chat go to the
// OperatorsChat.
//
// Thread-safety: any method from any thread (each transport calls from one of its own).
#pragma once

#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "core/assistant/context.h"

namespace llmassist::detail::assistant {

struct Core;

class Inbound {
 public:
  explicit Inbound(Core& core) : core_(core) {}
  Inbound(const Inbound&) = delete;
  Inbound& operator=(const Inbound&) = delete;

  // Events delivered by the transport of `channel`. Events in a row that are questions for the
  // assistant are stored in one transaction (one commit for a whole page of getUpdates);
  // anything else is handled on its own, in order.
  InboundAck on_events(std::string_view channel, std::span<const InboundEvent> events);

  void handoff(const Chat& chat, const std::string& actor);
  void handback(const Chat& chat, const std::string& actor);

 private:
  // A user's message, read for storing: its chat and what it asks for.
  struct Incoming {
    const InboundEvent* event = nullptr;
    Chat chat;
    InboundMessage message;
    bool start = false;           // /start
    bool human = false;           // /human
    bool back = false;            // /bot, in operator mode
    bool over_limit = false;      // past the rate limit: stored, not answered
    bool tell_slow_down = false;  // the first such message of its window
  };

  // `opened`: the reply a message opened.
  Status on_event(std::string_view channel, const InboundEvent& e, ReplyId& opened);
  bool is_user_message(std::string_view channel, const InboundEvent& e) const;
  Result<Incoming> read_message(const InboundEvent& e);
  // `chat`: the message's chat, as upsert_chat() gave it.
  Result<Incoming> read_message(const InboundEvent& e, Chat chat);
  // Counts a question of `e`'s user; true when it is past options.rate_limit (`first`: the
  // first of its window to be).
  bool over_rate_limit(const InboundEvent& e, bool& first);
  Status on_message(const InboundEvent& e, ReplyId& opened);
  // What a stored message asks for: an answer, a command, the operators' attention.
  void after_stored(const Incoming& in, const InboundResult& stored);
  Status on_user_callback(std::string_view channel, const InboundEvent& e);

  // Each user's messages in the current window of options.rate_limit.
  struct RateWindow {
    MonotonicClock::time_point start{};
    int count = 0;
  };

  Core& core_;
  std::mutex rate_mu_;
  std::map<std::string, RateWindow, std::less<>> rates_;  // guarded by rate_mu_; channel:user
};

}  // namespace llmassist::detail::assistant
