// The ModerationQueue over the MessageStore interface only, so that it works over any store.
// Each decision reads the reply, checks it (status, another operator's claim, something to
// send), then asks the store for a compare-and-set transition naming the status and version it
// read. The store re-checks the status, the version and the claim in its own transaction, so the
// checks here only give clearer messages; they never decide a race.
#include "llmassist/core/store_moderation_queue.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <utility>

#include "core/utf8.h"

namespace llmassist {
namespace {

constexpr std::size_t kMaxOperatorName = 64;
constexpr int kMaxPage = 1000;
constexpr int kMaxHistory = 100;

bool awaits_decision(ReplyStatus s) {
  return s == ReplyStatus::kPending || s == ReplyStatus::kFailed;
}

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::string utc_time(Timestamp t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf, n);
}

class StoreModerationQueue final : public ModerationQueue {
 public:
  StoreModerationQueue(std::shared_ptr<MessageStore> store, ModerationQueueOptions options)
      : store_(std::move(store)),
        options_(std::move(options)),
        clock_(options_.clock ? options_.clock : system_clock()),
        logger_(options_.logger ? options_.logger : stderr_logger()) {}

  Result<std::vector<PendingItem>> list_pending(const PendingQuery& query) override {
    if (query.limit < 1 || query.limit > kMaxPage) {
      return invalid_argument(
          fmt::format("limit must be between 1 and {}, got {}", kMaxPage, query.limit));
    }
    if (query.history < 0 || query.history > kMaxHistory) {
      return invalid_argument(
          fmt::format("history must be between 0 and {}, got {}", kMaxHistory, query.history));
    }
    // The store lists one status at a time: take up to `limit` of each, oldest first, and keep
    // the oldest `limit` of both. Two calls whatever the queue's length.
    std::vector<Reply> replies;
    for (ReplyStatus status : {ReplyStatus::kPending, ReplyStatus::kFailed}) {
      ReplyQuery q;
      q.status = status;
      q.oldest_first = true;
      q.after_id = query.after_id;
      q.limit = query.limit;
      LLMASSIST_ASSIGN_OR_RETURN(auto page, store_->list_replies(q));
      std::move(page.begin(), page.end(), std::back_inserter(replies));
    }
    std::sort(replies.begin(), replies.end(),
              [](const Reply& a, const Reply& b) { return a.id < b.id; });
    if (replies.size() > static_cast<std::size_t>(query.limit)) {
      replies.resize(static_cast<std::size_t>(query.limit));
    }

    // One chat and one history read per distinct chat, however many of its replies wait.
    std::map<ChatId, Context> chats;
    std::vector<PendingItem> out;
    out.reserve(replies.size());
    for (Reply& reply : replies) {
      auto it = chats.find(reply.chat_id);
      if (it == chats.end()) {
        LLMASSIST_ASSIGN_OR_RETURN(auto context, load_context(reply.chat_id, query.history));
        it = chats.emplace(reply.chat_id, std::move(context)).first;
      }
      out.push_back({std::move(reply), it->second.chat, it->second.history});
    }
    return out;
  }

  Result<PendingItem> get(ReplyId id, int history) override {
    if (history < 0) history = options_.default_history;
    if (history > kMaxHistory) {
      return invalid_argument(
          fmt::format("history must be between 0 and {}, got {}", kMaxHistory, history));
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, store_->get_reply(id));
    LLMASSIST_ASSIGN_OR_RETURN(auto context, load_context(reply.chat_id, history));
    return PendingItem{std::move(reply), std::move(context.chat), std::move(context.history)};
  }

  Result<Reply> claim(ReplyId id, std::string_view operator_name,
                      std::chrono::milliseconds lease) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(operator_name));
    const std::string actor = operator_actor(operator_name);
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, decidable(id, actor));
    ClaimRequest request;
    request.status = reply.status;
    request.worker = actor;
    request.lease = lease > std::chrono::milliseconds::zero() ? lease : options_.default_lease;
    request.reply_id = id;
    request.due_only = false;
    LLMASSIST_ASSIGN_OR_RETURN(auto claimed, store_->claim_replies(request));
    if (claimed.size() != 1) {
      return aborted(fmt::format("reply {} could not be claimed; look at it again", id));
    }
    return std::move(claimed.front());
  }

  Status release(ReplyId id, std::string_view operator_name) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(operator_name));
    return store_->release_claim(id, operator_actor(operator_name));
  }

  Result<Reply> approve(ReplyId id, std::string_view operator_name) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(operator_name));
    const std::string actor = operator_actor(operator_name);
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, decidable(id, actor));
    // What goes out: a text already made final (a failed delivery, an edit saved earlier), else
    // the draft. The store picks it the same way.
    if (blank(reply.final_text) && blank(reply.draft_text)) {
      return failed_precondition(
          fmt::format("reply {} is {} and has no text to approve; write the answer with edit", id,
                      to_string(reply.status)));
    }
    ReplyChange change = decision(reply, ReplyStatus::kApproved, actor, "approve");
    return decide(id, change, operator_name);
  }

  Result<Reply> edit(ReplyId id, std::string_view operator_name, std::string text) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(operator_name));
    if (blank(text)) return invalid_argument("the edited answer is empty");
    const std::string actor = operator_actor(operator_name);
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, decidable(id, actor));
    ReplyChange change = decision(reply, ReplyStatus::kApproved, actor, "edit");
    change.final_text = std::move(text);
    change.author = std::string(operator_name);
    return decide(id, change, operator_name);
  }

  Result<Reply> reject(ReplyId id, std::string_view operator_name, std::string reason) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(operator_name));
    const std::string actor = operator_actor(operator_name);
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, decidable(id, actor));
    ReplyChange change = decision(reply, ReplyStatus::kRejected, actor, "reject");
    // Kept with the reply (as why its last draft failed) for the redraft's prompt.
    change.error = reason;
    change.detail = std::move(reason);
    return decide(id, change, operator_name);
  }

 private:
  struct Context {
    Chat chat;
    std::vector<Message> history;
  };

  Result<Context> load_context(ChatId chat_id, int history) {
    Context out;
    LLMASSIST_ASSIGN_OR_RETURN(out.chat, store_->get_chat(chat_id));
    if (history > 0) {
      HistoryQuery q;
      q.limit = history;
      LLMASSIST_ASSIGN_OR_RETURN(out.history, store_->chat_history(chat_id, q));
      std::reverse(out.history.begin(), out.history.end());  // the store pages newest first
    }
    return out;
  }

  // The reply, when `actor` may decide on it now.
  Result<Reply> decidable(ReplyId id, const std::string& actor) {
    LLMASSIST_ASSIGN_OR_RETURN(auto reply, store_->get_reply(id));
    if (!awaits_decision(reply.status)) {
      return failed_precondition(
          fmt::format("reply {} is {}, not awaiting a decision", id, to_string(reply.status)));
    }
    if (!reply.claimed_by.empty() && reply.claimed_by != actor && reply.lease_until &&
        *reply.lease_until > clock_->now()) {
      return aborted(fmt::format("reply {} is claimed by {} until {}", id, reply.claimed_by,
                                 utc_time(*reply.lease_until)));
    }
    return reply;
  }

  static ReplyChange decision(const Reply& seen, ReplyStatus to, const std::string& actor,
                              std::string action) {
    ReplyChange change;
    change.from = seen.status;
    change.to = to;
    change.expected_version = seen.version;
    change.actor = actor;
    change.audit_action = std::move(action);
    return change;
  }

  Result<Reply> decide(ReplyId id, const ReplyChange& change, std::string_view operator_name) {
    auto result = store_->transition_reply(id, change);
    if (result.ok()) {
      logger_->log(LogLevel::kInfo, "moderation",
                   fmt::format("operator {} decided {} on reply {} (now {})", operator_name,
                               change.audit_action, id, to_string(result->status)));
    }
    return result;
  }

  const std::shared_ptr<MessageStore> store_;
  const ModerationQueueOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<Logger> logger_;
};

}  // namespace

std::unique_ptr<ModerationQueue> make_moderation_queue(std::shared_ptr<MessageStore> store,
                                                       ModerationQueueOptions options) {
  return std::make_unique<StoreModerationQueue>(std::move(store), std::move(options));
}

Status check_operator_name(std::string_view name) {
  if (name.empty()) return invalid_argument("the operator name is empty");
  if (name.size() > kMaxOperatorName) {
    return invalid_argument(fmt::format("the operator name is {} bytes, more than the {} allowed",
                                        name.size(), kMaxOperatorName));
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return invalid_argument("the operator name starts or ends with a space");
  }
  return detail::check_printable(name, "the operator name");
}

std::string operator_actor(std::string_view name) {
  // A chat operator's "telegram:<user id>" is an actor already.
  constexpr std::string_view kTelegram = "telegram:";
  if (name.starts_with(kTelegram) && name.size() > kTelegram.size() &&
      name.find_first_not_of("-0123456789", kTelegram.size()) == std::string_view::npos) {
    return std::string(name);
  }
  return "operator:" + std::string(name);
}

}  // namespace llmassist
