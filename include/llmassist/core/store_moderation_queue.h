// The ModerationQueue over any MessageStore: the operators' decisions become compare-and-set
// transitions of the store's replies, each with its audit event in the same transaction.
//
// How the decisions map onto the reply lifecycle (see types.h):
//
//   decision   on a pending reply             on a failed reply
//   approve    pending -> approved (the draft) failed -> approved (the text it already has;
//                                              kFailedPrecondition when it has none)
//   edit       pending -> approved, text by    failed -> approved, text by the operator: an
//              the operator                    answer by hand
//   reject     pending -> rejected: a new      failed -> rejected: ask for a new draft, which
//              draft is generated              the pipeline produces as for any rejected one
//
// Every decision is made by "operator:<name>" (the audit actor and the claim's worker name);
// an edit's author is <name>. A decision names the status and version it saw, so a concurrent
// change (another operator, the bot) makes it fail with kAborted instead of overwriting.
//
// Thread-safety: the queue holds no mutable state; every method may be called from many threads
// at once (the store serializes what must be serialized).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"

namespace llmassist {

struct LLMASSIST_API ModerationQueueOptions {
  // Messages of history for get() when it is passed a negative count. Default 10.
  int default_history = 10;
  // The claim's length when claim() is passed a lease of zero or less. Default 5 minutes.
  std::chrono::milliseconds default_lease{std::chrono::minutes(5)};
  // Decides whether another operator's claim is still live before asking the store (which checks
  // again, atomically). Should be the store's clock. Default: system_clock().
  std::shared_ptr<Clock> clock;
  // Where decisions are logged (at kInfo). Default: stderr_logger().
  std::shared_ptr<Logger> logger;
};

// The ModerationQueue over `store`, which must not be null.
[[nodiscard]] LLMASSIST_API std::unique_ptr<ModerationQueue> make_moderation_queue(
    std::shared_ptr<MessageStore> store, ModerationQueueOptions options = {});

// OK when `name` may name an operator: 1 to 64 bytes of valid UTF-8 with no control characters
// (C0, DEL, C1), not starting or ending with a space. Otherwise kInvalidArgument saying why.
// Operator names end up in audit logs, claims and terminals: they must print as themselves.
[[nodiscard]] LLMASSIST_API Status check_operator_name(std::string_view name);

// "operator:<name>": the actor of an operator's audit events and the worker of their claims.
// A Telegram operator's "telegram:<user id>" (as the assistant passes it for decisions in the
// operators' chat) is kept as it is.
[[nodiscard]] LLMASSIST_API std::string operator_actor(std::string_view name);

}  // namespace llmassist
