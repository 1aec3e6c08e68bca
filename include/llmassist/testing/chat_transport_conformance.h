// The ChatTransport conformance suite: what chat_transport.h promises, checked through the
// public interface against a harness that can make the user write and read what the user got.
//
// The checks: start() twice is kFailedPrecondition; a user's message reaches the handler once,
// its UTF-8 text intact, and is not offered again once acknowledged; send() calls `done`
// exactly once and the user receives the text intact; buttons reach the user; send_typing()
// calls `done` once; a send after stop() fails, once; an event the handler did not persist is
// offered again, and one it persisted is not; a button pressed reaches the handler as a
// callback.
//
// Thread-safety: run one check at a time per factory unless its harnesses are independent.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/chat_transport.h"
#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// A transport under test and the user at its other end. Made anew for each check; the
// transport is not started.
class ChatTransportHarness {
 public:
  ChatTransportHarness() = default;
  virtual ~ChatTransportHarness() = default;
  ChatTransportHarness(const ChatTransportHarness&) = delete;
  ChatTransportHarness& operator=(const ChatTransportHarness&) = delete;

  virtual ChatTransport& transport() = 0;
  // The chat's external id, as the transport names it in events and takes it in messages.
  [[nodiscard]] virtual std::string chat() const = 0;
  // Makes the user write `text` (one line, no newline).
  virtual Status user_writes(const std::string& text) = 0;
  // Everything the user has received so far, as text (messages and button labels).
  virtual std::string received() = 0;
  // Makes the user press the button with `callback_data` under the message `message_id` (as
  // send() gave it). kUnimplemented (the default): the channel has no buttons, and the check of
  // presses is skipped.
  virtual Status user_presses(const std::string& message_id, const std::string& callback_data) {
    (void)message_id;
    (void)callback_data;
    return Status(StatusCode::kUnimplemented, "this channel has no buttons");
  }
  // Whether the channel offers again an event the handler did not persist (false for a channel
  // whose sender gets the failure and sends again, as the API channel's caller does): its events
  // then need no dedup key, and the check of redelivery is skipped.
  [[nodiscard]] virtual bool redelivers() const { return true; }
  // Whether send() shows the user what it sent (false for a channel that keeps only the stored
  // replies for the user to fetch, as the API channel does): the checks of what the user
  // received are then skipped, and send() need give no message id.
  [[nodiscard]] virtual bool shows_messages() const { return true; }
};

using ChatTransportFactory = std::function<Result<std::unique_ptr<ChatTransportHarness>>()>;

namespace transport_checks {

using namespace std::chrono_literals;

constexpr const char* kText = "Grüße — 日本語 — 🙂 <b>&amp;</b>";

struct Inbox {
  std::mutex mu;
  std::vector<InboundEvent> events;
  InboundHandler handler() {
    return [this](std::span<const InboundEvent> batch) {
      std::lock_guard lock(mu);
      for (const auto& e : batch) events.push_back(e);
      return InboundAck{batch.size(), Status()};
    };
  }
  std::size_t size() {
    std::lock_guard lock(mu);
    return events.size();
  }
};

inline bool started(CheckContext& t, ChatTransportHarness& h, Inbox& inbox) {
  return t.expect_ok(h.transport().start(inbox.handler()), "start");
}

inline void start_twice(CheckContext& t, ChatTransportHarness& h) {
  Inbox inbox;
  if (!started(t, h, inbox)) return;
  t.expect_code(h.transport().start(inbox.handler()), StatusCode::kFailedPrecondition,
                "a second start()");
  h.transport().stop();
}

inline void inbound_once(CheckContext& t, ChatTransportHarness& h) {
  Inbox inbox;
  if (!started(t, h, inbox)) return;
  if (t.expect_ok(h.user_writes(kText), "the user writes")) {
    if (t.expect(wait_until([&] { return inbox.size() > 0; }), "the message never arrived")) {
      std::this_thread::sleep_for(200ms);
      std::lock_guard lock(inbox.mu);
      t.expect(inbox.events.size() == 1, "an acknowledged message was offered again");
      const InboundEvent& e = inbox.events.front();
      t.expect(e.kind == InboundKind::kMessage, "the event is not a message");
      t.expect(e.text == kText, "the text arrived as '" + e.text + "'");
      t.expect(e.chat_external_id == h.chat(), "the event names another chat");
      t.expect(e.channel == h.transport().channel(), "the event names another channel");
      if (h.redelivers()) t.expect(!e.dedup_key.empty(), "the event has no dedup key");
    }
  }
  h.transport().stop();
}

inline void send_once(CheckContext& t, ChatTransportHarness& h) {
  Inbox inbox;
  if (!started(t, h, inbox)) return;
  OutboundMessage m;
  m.chat_external_id = h.chat();
  m.text = kText;
  m.buttons = {{{"Yes, ✓", "yes"}, {"No", "no"}}};
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto ok = std::make_shared<std::atomic<bool>>(false);
  const bool shows = h.shows_messages();
  h.transport().send(m, [calls, ok, shows](Result<SentMessage> r) {
    *ok = r.ok() && (!shows || !r->message_ids.empty());
    ++*calls;
  });
  if (t.expect(wait_until([&] { return calls->load() > 0; }), "send() never called done")) {
    t.expect(*ok, "send() failed or gave no message id");
  }
  if (calls->load() > 0 && shows) {
    t.expect(wait_until([&] { return h.received().find(kText) != std::string::npos; }),
             "the user did not receive the text intact: '" + h.received() + "'");
    t.expect(h.received().find("Yes, ✓") != std::string::npos, "the buttons did not arrive");
  }
  if (calls->load() > 0) {
    std::this_thread::sleep_for(100ms);
    t.expect(calls->load() == 1, "send() called done more than once");
  }
  auto typing = std::make_shared<std::atomic<int>>(0);
  h.transport().send_typing(h.chat(), [typing](Status) { ++*typing; });
  t.expect(wait_until([&] { return typing->load() > 0; }), "send_typing() never called done");
  std::this_thread::sleep_for(100ms);
  t.expect(typing->load() == 1, "send_typing() called done more than once");
  h.transport().stop();
  if (!shows) t.skip("the channel shows the user nothing send() sent: only done was checked");
}

// The handler persists nothing of the first batch in which `second` appears (and all before it
// in that batch): the transport offers the unpersisted events again, and, once persisted, never
// again.
inline void partial_ack_redelivered(CheckContext& t, ChatTransportHarness& h) {
  if (!h.redelivers()) {
    t.skip("the channel does not offer an event again: its sender gets the failure");
    return;
  }
  struct State {
    std::mutex mu;
    std::vector<std::string> persisted;
    int refusals = 0;
  } state;
  const std::string first = "first — ✓";
  const std::string second = "second — ✓";
  InboundHandler handler = [&](std::span<const InboundEvent> batch) {
    std::lock_guard lock(state.mu);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].text == second && state.refusals == 0) {
        ++state.refusals;
        return InboundAck{i, Status(StatusCode::kUnavailable, "the store is down")};
      }
      state.persisted.push_back(batch[i].text);
    }
    return InboundAck{batch.size(), Status()};
  };
  if (!t.expect_ok(h.transport().start(handler), "start")) return;
  if (t.expect_ok(h.user_writes(first), "the user writes") &&
      t.expect_ok(h.user_writes(second), "the user writes again")) {
    const bool both = wait_until([&] {
      std::lock_guard lock(state.mu);
      return state.persisted.size() >= 2;
    });
    std::this_thread::sleep_for(200ms);
    std::lock_guard lock(state.mu);
    if (t.expect(both, "an event the handler did not persist was not offered again")) {
      t.expect(state.persisted == std::vector<std::string>{first, second},
               "the events were persisted out of order, or one was offered again after it was "
               "persisted (" +
                   std::to_string(state.persisted.size()) + " persisted)");
    }
  }
  h.transport().stop();
}

inline void button_press(CheckContext& t, ChatTransportHarness& h) {
  if (!h.shows_messages()) {
    t.skip("the channel shows the user no buttons");
    return;
  }
  Inbox inbox;
  if (!started(t, h, inbox)) return;
  OutboundMessage m;
  m.chat_external_id = h.chat();
  m.text = "Pick one";
  m.buttons = {{{"Yes", "pick:yes"}, {"No", "pick:no"}}};
  Result<SentMessage> sent = send_sync(h.transport(), m);
  if (t.expect_ok(sent.status(), "send()") &&
      t.expect(!sent->message_ids.empty(), "send() gave no message id")) {
    const Status pressed = h.user_presses(sent->message_ids.front(), "pick:no");
    if (pressed.code() == StatusCode::kUnimplemented) {
      h.transport().stop();
      t.skip("the harness cannot press a button: " + pressed.to_string());
      return;
    }
    if (t.expect_ok(pressed, "the user presses a button") &&
        t.expect(wait_until([&] { return inbox.size() > 0; }), "the press never arrived")) {
      std::lock_guard lock(inbox.mu);
      const InboundEvent& e = inbox.events.front();
      t.expect(e.kind == InboundKind::kCallback, "the press did not arrive as a callback");
      t.expect(e.callback_data == "pick:no", "the press carries '" + e.callback_data + "'");
      t.expect(!e.callback_id.empty(), "the press has no callback id to answer");
      t.expect(e.chat_external_id == h.chat(), "the press names another chat");
    }
  }
  h.transport().stop();
}

inline void send_after_stop(CheckContext& t, ChatTransportHarness& h) {
  Inbox inbox;
  if (!started(t, h, inbox)) return;
  h.transport().stop();
  OutboundMessage m;
  m.chat_external_id = h.chat();
  m.text = "too late";
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto failed = std::make_shared<std::atomic<bool>>(false);
  h.transport().send(m, [calls, failed](Result<SentMessage> r) {
    *failed = !r.ok();
    ++*calls;
  });
  if (t.expect(wait_until([&] { return calls->load() > 0; }), "a send after stop never ended")) {
    t.expect(*failed, "a send after stop succeeded");
    std::this_thread::sleep_for(100ms);
    t.expect(calls->load() == 1, "a send after stop called done more than once");
  }
}

inline const std::vector<NamedCheck<ChatTransportHarness>>& all() {
  static const std::vector<NamedCheck<ChatTransportHarness>> checks = {
      {"start twice is kFailedPrecondition", &start_twice},
      {"a user's message arrives once, its UTF-8 intact", &inbound_once},
      {"send and send_typing call done once; text and buttons reach the user", &send_once},
      {"a send after stop fails, once", &send_after_stop},
      {"an event acknowledged in part is offered again from the first not persisted",
       &partial_ack_redelivered},
      {"a button pressed reaches the handler as a callback", &button_press},
  };
  return checks;
}

}  // namespace transport_checks

inline std::vector<std::string> chat_transport_check_names() {
  return check_names(transport_checks::all());
}

inline CheckResult run_chat_transport_check(std::string_view name,
                                            const ChatTransportFactory& factory) {
  return run_factory_check(transport_checks::all(), name, factory);
}

inline std::vector<CheckResult> run_chat_transport_conformance(
    const ChatTransportFactory& factory) {
  return run_every_check(transport_checks::all(), [&](std::string_view name) {
    return run_chat_transport_check(name, factory);
  });
}

}  // namespace llmassist::testing
