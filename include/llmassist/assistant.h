// Assistant: the engine of an LLM-assisted support bot. It composes one or more ChatTransports
// (Telegram, the REST API's channel, ...: each chat is served by the transport of its channel),
// a MessageStore, an LlmProvider (usually a FallbackChain), a MemoryManager and, for operators
// working from a chat, a ModerationQueue, and runs the data flow of docs/architecture.md:
//
//   inbound ─▶ stored (idempotent) ─▶ draft by the LLM ─▶ auto: approved │ review: pending ─▶
//   operator decides ─▶ approved ─▶ the outbox sends it ─▶ sent
//
// Guarantees:
// - Every inbound message is in the store before anything else happens, and the transport
//   confirms it to its channel only after that. A duplicate delivery is ignored.
// - One reply in flight per chat, in order; messages that arrive meanwhile get their own replies
//   after (or one reply together, with QueuedMessages::kAnswerTogether). Never dropped.
// - The outbox is the only path for answers: it sends `approved` replies, marks them `sent`,
//   retries with backoff, and marks a chat blocked when the user blocked the bot. Decisions
//   written by other processes (the operator CLI, the admin server) are delivered by it too.
// - After a crash: replies left `generating` by this instance are generated again at start-up,
//   those of another (dead) instance once their lease runs out; `approved` ones are sent.
// - When every provider fails the reply becomes `failed`, the user gets a plain apology, and
//   operators see the failed reply and may answer it by hand.
//
// Commands and buttons from users: /start (a welcome and a new session), /human or the "talk to
// a human" button (the chat switches to operator mode: the user's messages go to operators, and
// their answers are relayed, marked as coming from a person), /bot (back to the assistant).
//
// The operators' chat (options.operator_chat_id, on the first transport's channel): drafts are
// posted there with Approve / Edit / Reject buttons and the user's question; handoff messages are
// forwarded there; an operator's reply to such a post goes to that user (an edit of the draft, or a
// handoff answer). Posts, buttons and replies from any other chat are never taken as operators'
// decisions, and in that chat only the users listed in options.operators decide (as "telegram:<user
// id>").
//
// A user who writes faster than options.rate_limit has the extra messages stored, unanswered,
// and is told once a window to slow down.
//
// Thread-safety: start() and stop() from one thread; stats() from any.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmassist/chat_transport.h"
#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/memory_manager.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"
#include "llmassist/scheduler.h"
#include "llmassist/status.h"
#include "llmassist/tool.h"

namespace llmassist {

enum class ModerationPolicy : std::uint8_t {
  kAuto,    // drafts go out at once
  kReview,  // drafts wait for an operator's decision
};

enum class QueuedMessages : std::uint8_t {
  kAnswerEach,      // every message gets its own answer, in order
  kAnswerTogether,  // messages that arrived while a reply was in flight get one answer together
};

// What the assistant says on its own. Plain text.
struct LLMASSIST_API AssistantTexts {
  std::string welcome = "Hello! Ask me anything. Send /human at any time to talk to a person.";
  std::string review_notice =
      "Thanks, your question has been received. An operator is checking the answer; it will "
      "arrive here shortly.";
  std::string failure =
      "Sorry, I can't answer right now. Your question has been passed to an operator, who will "
      "reply here.";
  std::string handoff = "Connecting you with a person. Your messages now go to an operator.";
  std::string handback = "You are talking to the assistant again.";
  std::string already_human = "An operator has your messages and will reply here.";
  std::string human_button = "Talk to a human";  // empty: no button under answers
  // Sent once a window when a user writes faster than AssistantOptions::rate_limit allows.
  std::string slow_down =
      "You are sending messages faster than I can answer. I have kept them, but I will answer "
      "only what you send after a short pause.";
  // Told to someone in the operators' chat who is not listed in AssistantOptions::operators.
  std::string not_operator = "Only the bot's operators may decide here.";
};

// At most `messages` messages from one user are answered within `per`; the rest are stored but
// not answered. messages = 0: no limit.
struct LLMASSIST_API InboundRateLimit {
  int messages = 0;
  std::chrono::seconds per{60};
};

// The sales agent's built-in tools (docs/tools.md), offered to the model besides
// AssistantParts::tools when it supports_tools(). Each is recorded as any tool call is.
struct LLMASSIST_API AgentOptions {
  // stop_contact: the contact asks not to be written to any more. Their chat is opted out
  // (Chat::opted_out_at): nothing the bot would send first goes there again; their own questions
  // are still answered. Has side effects: in review policy it runs on the draft's approval.
  bool stop_contact = false;
  // handoff_to_human: a request for a person in plain words hands the chat over, as /human does
  // (operator mode, the contact told, the operators' chat told). Has side effects.
  bool handoff_to_human = false;
  // send_document: the files the model may send, by the name it asks for ("presentation"):
  // letters, digits, '_', '-', '.'. The file goes out with the answer, after its text; the
  // caption tells the model what it is. None: no such tool. It only attaches (no side effects).
  std::map<std::string, Attachment> documents;
};

struct LLMASSIST_API AssistantOptions {
  ModerationPolicy policy = ModerationPolicy::kAuto;
  QueuedMessages queued = QueuedMessages::kAnswerEach;
  AssistantTexts texts;
  // The operators' chat on the transport's channel (a Telegram group id); empty: none.
  std::string operator_chat_id;
  // Who may decide in the operators' chat: the transport's user ids (Telegram user ids, as
  // text). Anyone else there is refused (told so; nothing changes; a warning is logged).
  // Required, not empty, with operator_chat_id. Their decisions are recorded as
  // "telegram:<user id>" (the channel's name and the id), never by a display name.
  std::vector<std::string> operators;
  // Messages from one user beyond this are stored but not sent to the model, and the user is
  // told once a window (texts.slow_down). Default: no limit.
  InboundRateLimit rate_limit;
  // Data retention: messages, finished replies and audit events older than this many days are
  // deleted (MessageStore::delete_older_than), at start() and then every hour. 0: kept
  // forever. Default 0.
  int retention_days = 0;
  // This bot's name among the processes sharing the store; it names its claims. Give each
  // running bot its own. Default "bot".
  std::string instance = "bot";
  // Drafts generated at once, across chats. A draft waiting for the model costs a few KiB (its
  // HTTP request and its record here), so this is no protection for a provider's rate limits:
  // give the provider its own (`max_in_flight`, limited_provider.h). Default 1,024, so that a
  // thousand chats asking at once are all drafted at once.
  int max_concurrent_drafts = 1024;
  // Answers being sent at once, across chats. Default 256.
  int max_concurrent_sends = 256;
  // A reply claimed this many times for drafting without a stored draft fails (it may be the
  // one that crashes the process). Default 3.
  int max_generation_attempts = 3;
  // Delivery attempts of an answer before it is given up as failed. Default 10.
  int max_send_attempts = 10;
  std::chrono::milliseconds send_retry_base{std::chrono::seconds(1)};  // doubles, capped below
  std::chrono::milliseconds send_retry_cap{std::chrono::minutes(5)};
  // A draft in the making is renewed this often, so that its claim never runs out while the
  // model thinks; a dead instance's claim runs out after lease (= 3 renewals). Default 20 s.
  std::chrono::milliseconds lease_renewal{std::chrono::seconds(20)};
  // The typing indicator goes out once a draft has taken this long (an answer that comes
  // sooner needs none, and costs no call to the channel), then again every typing_interval
  // while the draft is generated. Defaults 1 s and 4 s. One sweep over the drafts in the making
  // sends the indicators and renews the claims, every quarter of the shortest of these three
  // intervals (within 10-250 ms), so each may come that much later.
  std::chrono::milliseconds typing_delay{std::chrono::seconds(1)};
  std::chrono::milliseconds typing_interval{std::chrono::seconds(4)};
  // Work this process causes (a message stored, a draft stored, an answer sent, a decision in
  // the operators' chat) is taken up at once, chat by chat. The whole store is looked at this
  // often, for what other processes decide (an operator's approval from llmassist-operator or the
  // admin server) and for retries that came due. Default 500 ms.
  std::chrono::milliseconds rescan_interval{std::chrono::milliseconds(500)};
  // Tools (AssistantParts::tools): the most rounds of calls one draft may make; the round after
  // the last is asked to answer in text. Default 4.
  int max_tool_steps = 4;
  // How long a tool call may take before the model is told it timed out. Default 30 s.
  std::chrono::milliseconds tool_timeout{std::chrono::seconds(30)};
  // The threads that run tool calls (they may block). Default 4.
  int tool_threads = 4;
  // The built-in tools of the sales agent's intents. Default: none.
  AgentOptions agent;
  // Answers are Markdown from the model, rendered for the channel.
  TextFormat format = TextFormat::kMarkdown;
  std::shared_ptr<Clock> clock;  // default: system_clock()
  // Times the typing indicator, the claims' renewals, the rescans and the rate limit's windows;
  // a test may drive it. Default: steady_monotonic_clock().
  std::shared_ptr<MonotonicClock> monotonic_clock;
  std::shared_ptr<Logger> logger;        // default: stderr_logger()
  std::shared_ptr<Scheduler> scheduler;  // default: one of its own
};

struct LLMASSIST_API AssistantParts {
  // The channels served: `transport` and `transports` together, at least one, each channel
  // (ChatTransport::channel()) once. The operators' chat is on the first of them.
  std::shared_ptr<ChatTransport> transport;
  std::vector<std::shared_ptr<ChatTransport>> transports;
  std::shared_ptr<MessageStore> store;    // required
  std::shared_ptr<LlmProvider> llm;       // required
  std::shared_ptr<MemoryManager> memory;  // required
  // Decisions taken from the operators' chat go through it; required with operator_chat_id.
  std::shared_ptr<ModerationQueue> moderation;
  // What the model may call while it drafts (tool.h); each name once. Offered only when `llm`
  // supports_tools().
  std::vector<std::shared_ptr<Tool>> tools;
};

// Counters since start(), for logs and the statistics page.
struct LLMASSIST_API AssistantStats {
  std::int64_t inbound = 0;     // messages stored
  std::int64_t duplicates = 0;  // deliveries ignored as duplicates
  std::int64_t drafts = 0;      // drafts stored
  std::int64_t failures = 0;    // replies that failed (every provider failed)
  std::int64_t sent = 0;        // answers delivered
  std::int64_t send_retries = 0;
  std::int64_t tool_calls = 0;  // tool calls run (failed ones too)
  int drafts_in_flight = 0;
  int sends_in_flight = 0;
};

class LLMASSIST_API Assistant final {
 public:
  // Errors: kInvalidArgument for a missing part, two transports of one channel, a tool with a
  // bad spec or a name taken, or operator_chat_id without a moderation queue or without
  // operators.
  [[nodiscard]] static Result<std::unique_ptr<Assistant>> create(AssistantParts parts,
                                                                 AssistantOptions options = {});
  ~Assistant();
  Assistant(const Assistant&) = delete;
  Assistant& operator=(const Assistant&) = delete;

  // Recovers what a crash left behind, starts the worker and the transports. Returns a
  // transport's error when it cannot start (the others are stopped again).
  Status start();
  // Stops receiving, waits up to `grace` for drafts and sends in flight, then stops. Replies
  // not finished stay in the store and are taken up at the next start.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  [[nodiscard]] AssistantStats stats() const;

 private:
  struct Impl;
  explicit Assistant(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace llmassist
