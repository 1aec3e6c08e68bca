// The Assistant engine. One worker thread looks at the store (woken by every change) and hands
// work out: drafts to the LLM, approved answers to the transport. Both run asynchronously; their
// completions write the outcome back to the store (on one writer thread, the completions that
// arrived together in one commit), which wakes the worker again. The store is the only shared
// state that matters: everything in memory here can be lost in a crash.
#include "llmassist/assistant.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "core/text.h"
#include "llmassist/runtime_settings.h"

namespace llmassist {
namespace {

constexpr std::string_view kComponent = "assistant";
constexpr std::string_view kCallbackPrefix = "llmassist:";
constexpr std::string_view kPostKey = "operator_chat.post.";

// "/start", "/start@my_bot" and "/start payload" are all /start.
bool is_command(std::string_view text, std::string_view command) {
  if (text.substr(0, command.size()) != command) return false;
  if (text.size() == command.size()) return true;
  const char next = text[command.size()];
  return next == ' ' || next == '@' || next == '\n';
}

// The rest of a command's line: "/reject too vague" -> "too vague".
std::string command_argument(std::string_view text) {
  const auto space = text.find(' ');
  return space == std::string_view::npos ? std::string() : detail::trimmed(text.substr(space + 1));
}

}  // namespace

struct Assistant::Impl : std::enable_shared_from_this<Assistant::Impl> {
  AssistantParts parts;
  AssistantOptions options;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Logger> logger;
  std::shared_ptr<Scheduler> scheduler;
  std::string worker;

  mutable std::mutex mu;
  std::condition_variable settled;  // drafts or sends finished
  // A draft in the making: what stop() cancels, and what the typing sweep needs once it began.
  struct Drafting {
    std::shared_ptr<CancelToken> token;
    std::shared_ptr<std::atomic<bool>> answered;  // set by the LLM's callback; null: not begun
    std::string external_id;                      // the chat, in the transport's terms
    std::string actor;                            // the claim to renew
    std::chrono::steady_clock::time_point next_typing;
    std::chrono::steady_clock::time_point next_renewal;
  };
  std::map<ReplyId, Drafting> drafting;  // guarded by mu
  bool sweeping = false;                 // guarded by mu: a typing sweep is scheduled
  std::set<ReplyId> sending;             // guarded by mu
  // What a chat may have to do, as the worker is told (see touch()).
  enum Work : unsigned { kDraftWork = 1, kSendWork = 2, kRedraftWork = 4, kAnyWork = 7 };
  std::map<ChatId, unsigned> touched;  // guarded by mu: chats with work this process caused
  // Chats with a draft or a send of this process in flight (guarded by mu): a claim of their
  // next one finds nothing until that one ends, and its end claims the next.
  std::map<ChatId, int> chats_drafting;
  std::map<ChatId, int> chats_sending;
  // Work the worker was told of for such a chat, left to the end of what is in flight there
  // (guarded by mu): finish_draft()/finish_send() hand it back to the worker.
  std::map<ChatId, unsigned> deferred;

  // Under mu: one more (`by` = 1) or one less (-1) of a chat's drafts or sends in flight; when
  // the last one ends, the work deferred to it goes back to the worker. True when woken.
  bool count_in_flight(std::map<ChatId, int>& in_flight, ChatId chat, int by, unsigned work) {
    int& n = in_flight[chat];
    n += by;
    if (n > 0) return false;
    in_flight.erase(chat);
    auto it = deferred.find(chat);
    if (it == deferred.end() || !(it->second & work)) return false;
    touched[chat] |= work;
    woken = true;
    if ((it->second &= ~work) == 0) deferred.erase(it);
    return true;
  }
  std::condition_variable wake;  // the worker waits on it
  bool woken = false;            // guarded by mu
  // Work a full slot held back, of any chat (kDraftWork, kSendWork): a claim took all the
  // slots it could, or a step's continuation found none. The slot that frees next wakes the
  // worker for a claim over all chats (`unblocked`), instead of leaving the waiting replies of
  // other chats to the next rescan. Guarded by mu.
  unsigned starved = 0;
  unsigned unblocked = 0;
  AssistantStats counters;  // guarded by mu
  std::atomic<bool> stopping{false};
  std::thread pump;
  std::chrono::steady_clock::time_point last_recovery{};
  std::uint64_t recoveries = 0;
  // What an admin set while the bot runs (runtime_settings.h), read at every rescan.
  std::atomic<ModerationPolicy> policy{ModerationPolicy::kAuto};
  std::string system_prompt_override;  // guarded by mu; empty: the configured one

  // Each user's messages in the current window of options.rate_limit.
  struct RateWindow {
    Timestamp start{};
    int count = 0;
  };
  std::mutex rate_mu;
  std::map<std::string, RateWindow, std::less<>> rates;  // guarded by rate_mu; by channel:user

  // Completions' writes. A completion (a draft from the LLM, a send's outcome from the
  // transport) arrives on its component's I/O thread. Written there, each would wait alone for
  // its commit (an fsync with synchronous=FULL) and hold up every other exchange of that
  // component meanwhile. They are queued for one writer thread instead, which takes all that
  // have arrived and writes them in one transaction (MessageStore::transition_and_claim_each):
  // the more arrive while a commit runs, the more the next one carries. Each still has its
  // effects (what comes next for its chat, waking the worker, counters) only after the commit.
  struct Done {
    Reply reply;
    std::optional<Result<Completion>> drafted;  // a draft's outcome, or
    std::optional<Result<SentMessage>> sent;    // a send's
    Chat chat;                                  // with a draft: its chat as read when it began
  };
  std::mutex done_mu;
  std::condition_variable done_ready;
  std::vector<Done> done_queue;  // guarded by done_mu
  bool writer_running = false;   // guarded by done_mu
  std::thread writer;            // started by start(), joined by stop()

  // Hands a completion to the writer, or writes it here when none runs (before start(), after
  // stop()).
  void completed(Done d) {
    std::vector<Done> here;
    {
      std::lock_guard lock(done_mu);
      if (writer_running) {
        done_queue.push_back(std::move(d));
        // The writer waits only when the queue is empty.
        if (done_queue.size() == 1) done_ready.notify_one();
        return;
      }
    }
    here.push_back(std::move(d));
    write_completions(here);
  }

  void run_writer() {
    std::vector<Done> batch;
    std::unique_lock lock(done_mu);
    while (true) {
      done_ready.wait(lock, [&] { return !done_queue.empty() || !writer_running; });
      if (done_queue.empty()) return;  // stopped, and nothing left
      batch.swap(done_queue);
      lock.unlock();
      write_completions(batch);
      batch.clear();
      lock.lock();
    }
  }

  void start_writer() {
    {
      std::lock_guard lock(done_mu);
      writer_running = true;
    }
    writer = std::thread([self = shared_from_this()] { self->run_writer(); });
  }

  // Lets the writer finish what is queued, then joins it.
  void stop_writer() {
    {
      std::lock_guard lock(done_mu);
      writer_running = false;
    }
    done_ready.notify_all();
    if (writer.joinable()) writer.join();
  }

  // ---- runtime settings --------------------------------------------------------------------

  void refresh_settings() {
    auto settings = read_runtime_settings(*parts.store);
    if (failed(settings, "reading the runtime settings")) return;
    const ModerationPolicy now = settings->policy.value_or(options.policy);
    if (policy.exchange(now) != now) {
      log(LogLevel::kInfo, fmt::format("moderation policy now {}",
                                       now == ModerationPolicy::kAuto ? "auto" : "review"));
    }
    std::lock_guard lock(mu);
    system_prompt_override = settings->system_prompt.value_or("");
  }

  std::string current_system_prompt() const {
    std::lock_guard lock(mu);
    return system_prompt_override;
  }

  // ---- logging -----------------------------------------------------------------------------

  void log(LogLevel level, const std::string& message) const {
    logger->log(level, kComponent, message);
  }
  template <typename T>
  bool failed(const Result<T>& r, std::string_view what) const {
    if (r.ok()) return false;
    log(LogLevel::kError, fmt::format("{}: {}", what, r.status().to_string()));
    return true;
  }
  bool failed(const Status& s, std::string_view what) const {
    if (s.ok()) return false;
    log(LogLevel::kError, fmt::format("{}: {}", what, s.to_string()));
    return true;
  }

  // ---- the worker --------------------------------------------------------------------------

  // Looking at the whole store costs in proportion to the replies waiting; looking at one chat
  // costs little. So this process's own work wakes the worker for the chats it touched (marked
  // after each write, so the worker finds it committed), and the worker looks at everything
  // every rescan_interval: for other processes' decisions and for retries that came due.
  void run() {
    auto last_scan = std::chrono::steady_clock::time_point{};
    while (true) {
      std::map<ChatId, unsigned> chats;
      unsigned any_chat = 0;  // work to claim over all chats
      {
        std::unique_lock lock(mu);
        wake.wait_until(lock, last_scan + options.rescan_interval,
                        [&] { return woken || stopping.load(); });
        if (stopping.load()) return;
        woken = false;
        chats.swap(touched);
        any_chat = std::exchange(unblocked, 0u);
        // A chat with a draft (a send) in flight has no other to start until that one ends,
        // and its end claims the next: the work waits for it instead of a claim that finds
        // nothing.
        for (auto& [chat, what] : chats) {
          for (auto [work, in_flight] :
               {std::pair{kDraftWork, &chats_drafting}, std::pair{kSendWork, &chats_sending}}) {
            if ((what & work) && in_flight->count(chat)) {
              what &= ~work;
              deferred[chat] |= work;
            }
          }
        }
      }
      recover_stale();
      const auto now = std::chrono::steady_clock::now();
      if (now - last_scan >= options.rescan_interval) {
        last_scan = now;
        refresh_settings();
        start_drafts({});
        start_sends({});
      } else {
        // Slots came free while replies of any chat waited for one: a claim over all chats
        // (which covers the touched chats' work of that kind too).
        unsigned covered = 0;
        if (any_chat & kDraftWork) {
          start_drafts({});
          covered |= kDraftWork | kRedraftWork;
        }
        if (any_chat & kSendWork) {
          start_sends({});
          covered |= kSendWork;
        }
        for (auto& [chat, what] : chats) what &= ~covered;
        auto with = [&](unsigned work) {
          std::vector<ChatId> these;
          for (const auto& [chat, what] : chats) {
            if (what & work) these.push_back(chat);
          }
          return these;
        };
        if (auto these = with(kDraftWork); !these.empty()) {
          claim_and_draft(ReplyStatus::kNew, worker, these);
        }
        if (auto these = with(kRedraftWork); !these.empty()) {
          claim_and_draft(ReplyStatus::kRejected, worker, these);
        }
        if (auto these = with(kSendWork); !these.empty()) start_sends(these);
      }
    }
  }

  // Wakes the worker for `chat`: call after the write that gave the chat work; `work`, what it
  // may be (a question stored needs a draft and nothing else).
  void touch(ChatId chat, unsigned work = kAnyWork) {
    {
      std::lock_guard lock(mu);
      touched[chat] |= work;
      woken = true;
    }
    wake.notify_one();
  }

  // Drafts whose worker died: their lease ran out. Claimed under a name used once, so that no
  // live claim of this process (renewed, never run out) is matched by its name.
  void recover_stale() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_recovery < options.lease_renewal) return;
    last_recovery = now;
    claim_and_draft(ReplyStatus::kGenerating, fmt::format("{}#r{}", worker, ++recoveries), {});
  }

  // `chats`: only these chats' replies; empty: any chat's.
  void start_drafts(const std::vector<ChatId>& chats) {
    claim_and_draft(ReplyStatus::kNew, worker, chats);
    claim_and_draft(ReplyStatus::kRejected, worker, chats);
  }

  void claim_and_draft(ReplyStatus from, const std::string& who, const std::vector<ChatId>& chats) {
    const int free = free_slots().drafts;
    const int limit = std::min(free, 1000);
    if (free <= 0) return starve(kDraftWork);
    auto claimed = parts.store->claim_replies(draft_claim(from, who, chats, limit, true));
    if (failed(claimed, "claiming replies to draft")) return;
    if (static_cast<int>(claimed->size()) == limit) starve(kDraftWork);  // more may wait
    for (auto& reply : *claimed) draft(std::move(reply));
  }

  // A full slot held `work` back (see `starved`).
  void starve(unsigned work) {
    std::lock_guard lock(mu);
    starved |= work;
  }

  // A slot of `work` came free: if work waits for one, the worker claims it over all chats.
  // Called with mu held; true when the worker is to be woken.
  bool slot_freed(unsigned work) {
    if (!(starved & work) || stopping.load()) return false;
    starved &= ~work;
    unblocked |= work;
    woken = true;
    return true;
  }

  // A claim of replies in `from` to draft, each the oldest unfinished reply of its chat (an
  // answer on its way does not hold it back).
  ClaimRequest draft_claim(ReplyStatus from, const std::string& who, std::vector<ChatId> chats,
                           int limit, bool retake_own) const {
    ClaimRequest q;
    q.status = from;
    q.to = ReplyStatus::kGenerating;
    q.worker = who;
    q.lease = options.lease_renewal * 3;
    q.limit = limit;
    q.head_of_chat_only = true;
    q.past_approved = true;
    q.retake_own = retake_own;
    q.chat_ids = std::move(chats);
    q.channel = parts.transport->channel();
    return q;
  }

  // ---- drafting ----------------------------------------------------------------------------

  // `known`: the reply's chat when the caller has it at hand, to save reading it again.
  void draft(Reply reply, const Chat* known = nullptr) {
    auto token = CancelToken::create();
    {
      std::lock_guard lock(mu);
      if (drafting.count(reply.id)) return;  // already ours
      drafting[reply.id].token = token;
      count_in_flight(chats_drafting, reply.chat_id, 1, kDraftWork);
      counters.drafts_in_flight = static_cast<int>(drafting.size());
    }
    if (reply.generation_attempts > options.max_generation_attempts) {
      fail_draft(reply, internal_error(fmt::format("drafting was interrupted {} times; given up",
                                                   reply.generation_attempts - 1)));
      return;
    }
    auto chat = known ? Result<Chat>(*known) : parts.store->get_chat(reply.chat_id);
    if (failed(chat, "reading the chat of a reply")) {
      give_back(reply);
      return;
    }
    MessageId upto = reply.question_id;
    if (options.queued == QueuedMessages::kAnswerTogether) upto = merge_queued(reply);
    ContextRequest cr;
    cr.system_prompt = current_system_prompt();
    cr.chat_id = reply.chat_id;
    cr.session_id = reply.session_id;
    cr.upto_message_id = upto;
    auto context = parts.memory->build_context(cr);
    if (failed(context, "building the prompt")) {
      give_back(reply);
      return;
    }
    auto answered = std::make_shared<std::atomic<bool>>(false);
    bool sweep = false;
    {
      std::lock_guard lock(mu);
      Drafting& d = drafting[reply.id];
      d.answered = answered;
      d.external_id = chat->external_id;
      d.actor = reply.claimed_by;
      const auto now = std::chrono::steady_clock::now();
      d.next_typing = now + options.typing_delay;
      d.next_renewal = now + options.lease_renewal;
      sweep = !std::exchange(sweeping, true);
    }
    if (sweep) schedule_sweep();
    CompletionRequest request;
    request.messages = std::move(context->messages);
    request.cancel = token;
    parts.llm->complete(
        std::move(request), {},
        [self = shared_from_this(), reply, answered, chat = *chat](Result<Completion> result) {
          *answered = true;
          self->completed(
              {.reply = reply, .drafted = std::move(result), .sent = std::nullopt, .chat = chat});
        });
  }

  // Typing indicator and lease renewal while drafts are in the making: one sweep over them all
  // every few hundred milliseconds, for as long as there are any. (A timer per draft cost a
  // wake-up of the scheduler per draft, mostly for drafts long done.)
  void sweep() {
    std::vector<std::string> typing;
    std::vector<std::pair<ReplyId, std::string>> renewals;
    {
      std::lock_guard lock(mu);
      if (drafting.empty() || stopping.load()) {
        sweeping = false;
        return;
      }
      const auto now = std::chrono::steady_clock::now();
      for (auto& [id, d] : drafting) {
        if (!d.answered || d.answered->load()) continue;  // not begun, or answered
        if (now >= d.next_typing) {
          typing.push_back(d.external_id);
          d.next_typing = now + options.typing_interval;
        }
        if (now >= d.next_renewal) {
          renewals.emplace_back(id, d.actor);
          d.next_renewal = now + options.lease_renewal;
        }
      }
    }
    for (const auto& chat : typing) parts.transport->send_typing(chat, [](Status) {});
    // All the claims due, in one transaction.
    std::vector<ReplyStep> renew(renewals.size());
    for (std::size_t i = 0; i < renewals.size(); ++i) {
      renew[i].id = renewals[i].first;
      renew[i].change.from = ReplyStatus::kGenerating;
      renew[i].change.to = ReplyStatus::kGenerating;
      renew[i].change.keep_claim = true;
      renew[i].change.extend_lease = options.lease_renewal * 3;
      renew[i].change.actor = std::move(renewals[i].second);
    }
    if (!renew.empty()) {
      for (const auto& r : parts.store->transition_and_claim_each(renew)) {
        failed(r, "renewing a draft's claim");
      }
    }
    schedule_sweep();
  }

  // A sweep's period: a fraction of the shortest interval it keeps, within 10-250 ms.
  void schedule_sweep() {
    const auto shortest =
        std::min({options.typing_delay, options.typing_interval, options.lease_renewal});
    const auto period = std::clamp<std::chrono::milliseconds>(
        shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(250));
    scheduler->schedule(period, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->sweep();
    });
  }

  // kAnswerTogether: the later questions of the chat, still `new`, are answered by this reply.
  MessageId merge_queued(const Reply& reply) {
    MessageId upto = reply.question_id;
    ReplyQuery q;
    q.status = ReplyStatus::kNew;
    q.chat_id = reply.chat_id;
    q.after_id = reply.id;
    auto later = parts.store->list_replies(q);
    if (failed(later, "reading queued questions")) return upto;
    for (const auto& r : *later) {
      if (r.session_id != reply.session_id) break;
      ReplyChange merge;
      merge.from = ReplyStatus::kNew;
      merge.to = ReplyStatus::kCancelled;
      merge.actor = worker;
      merge.audit_action = "merge";
      merge.detail = fmt::format("answered together with reply {}", reply.id);
      if (!failed(parts.store->transition_reply(r.id, merge), "merging a queued question")) {
        upto = std::max(upto, r.question_id);
      }
    }
    return upto;
  }

  // After the draft's outcome is written: the chat may have an answer to send, or its next
  // question to draft; the worker looks unless `continued` (the write claimed them already).
  void finish_draft(const Reply& reply, bool continued = false) {
    bool woke = false;
    {
      std::lock_guard lock(mu);
      if (drafting.erase(reply.id)) {
        woke = count_in_flight(chats_drafting, reply.chat_id, -1, kDraftWork);
        woke = slot_freed(kDraftWork) || woke;
      }
      counters.drafts_in_flight = static_cast<int>(drafting.size());
      settled.notify_all();
    }
    if (!continued) {
      touch(reply.chat_id);
    } else if (woke) {
      wake.notify_one();
    }
  }

  // ---- a chat's next step, claimed with the write that ends the current one ----------------

  // The claims that carry `chat` on when one of its steps ends: its next answer to send, its
  // next question to draft (a draft may begin while the previous answer is on its way), each
  // only when a slot is free counting the one this step frees (`ending`). Made in the same
  // transaction as the step's write, they save the worker a wake-up, a claim and a commit on
  // the chat's path. `complete` is false when a slot was full or the assistant is stopping:
  // the worker must look (later).
  struct Continuation {
    std::vector<ClaimRequest> claims;
    int send = -1;  // index in claims, or -1
    int draft = -1;
    bool complete = false;  // also when none was made (a draft left for an operator)
  };
  // Drafts and sends that may still begin under the limits. For the continuations of one
  // batch of completions: each step that ends frees its own, each claim made takes one (whether
  // it finds a reply or not).
  struct Slots {
    int drafts = 0;
    int sends = 0;
  };
  Slots free_slots() const {
    std::lock_guard lock(mu);
    return {options.max_concurrent_drafts - static_cast<int>(drafting.size()),
            options.max_concurrent_sends - static_cast<int>(sending.size())};
  }
  enum class Ending { kDraft, kSend };
  // The steps that end in one batch of completions, by chat: their drafts and sends still
  // count as in flight while the batch is written.
  struct Endings {
    std::map<ChatId, int> drafts;
    std::map<ChatId, int> sends;
  };
  // Skips a claim that cannot take anything: while another draft (send) of the chat is in
  // flight and does not end in this batch, the chat's next waits for it, and its end claims
  // the next (see `deferred` for what the worker is told meanwhile).
  Continuation continuation(ChatId chat, Ending ending, Slots& slots, const Endings& batch) {
    Continuation c;
    (ending == Ending::kDraft ? slots.drafts : slots.sends) += 1;
    if (stopping.load()) return c;
    c.complete = true;
    bool other_draft = false;
    bool other_send = false;
    {
      std::lock_guard lock(mu);
      const auto count = [&](const std::map<ChatId, int>& of) {
        const auto it = of.find(chat);
        return it == of.end() ? 0 : it->second;
      };
      other_draft = count(chats_drafting) > count(batch.drafts);
      other_send = count(chats_sending) > count(batch.sends);
    }
    if (other_draft) {
      // its end claims the next
    } else if (slots.drafts > 0) {
      --slots.drafts;
      c.draft = static_cast<int>(c.claims.size());
      c.claims.push_back(draft_claim(ReplyStatus::kNew, worker, {chat}, 1, false));
    } else {
      c.complete = false;
      starve(kDraftWork);
    }
    if (other_send) {
      // its end claims the next
    } else if (slots.sends > 0) {
      --slots.sends;
      c.send = static_cast<int>(c.claims.size());
      c.claims.push_back(send_claim({chat}, 1, false));
    } else {
      c.complete = false;
      starve(kSendWork);
    }
    return c;
  }

  // Starts what a continuation claimed, with the chat as read in its transaction: the draft
  // first, as the longer path.
  void carry_on(const Continuation& c, ChangeAndClaims& done) {
    if (c.draft >= 0) {
      for (auto& r : done.claimed[static_cast<std::size_t>(c.draft)]) {
        draft(std::move(r), &done.chat);
      }
    }
    if (c.send >= 0) {
      for (auto& r : done.claimed[static_cast<std::size_t>(c.send)]) {
        send(std::move(r), &done.chat);
      }
    }
  }

  // The draft could not even start (the store failed): back to `new` for another try.
  void give_back(const Reply& reply) {
    ReplyChange back;
    back.from = ReplyStatus::kGenerating;
    back.to = ReplyStatus::kNew;
    back.actor = reply.claimed_by;
    failed(parts.store->transition_reply(reply.id, back), "giving a reply back");
    finish_draft(reply);
  }

  // ---- writing completions -----------------------------------------------------------------

  // Writes a batch of completions: the steps that went well in one transaction, each with the
  // claims that carry its chat on; then, for each, what follows. Failures are written one by
  // one, as they come (they are rare and each has its own path).
  void write_completions(std::vector<Done>& batch) {
    Slots slots = free_slots();
    Endings ending;
    for (const Done& d : batch) ++(d.drafted ? ending.drafts : ending.sends)[d.reply.chat_id];
    std::vector<ReplyStep> steps;
    std::vector<Continuation> nexts;
    std::vector<const Done*> of;
    steps.reserve(batch.size());
    nexts.reserve(batch.size());
    of.reserve(batch.size());
    for (const Done& d : batch) {
      ReplyStep step;
      step.id = d.reply.id;
      Continuation next;
      const bool ok = d.drafted ? draft_step(d.reply, *d.drafted, step.change, next, slots, ending)
                                : send_step(d.reply, *d.sent, step.change, next, slots, ending);
      if (!ok) continue;
      step.claims = std::move(next.claims);
      steps.push_back(std::move(step));
      nexts.push_back(std::move(next));
      of.push_back(&d);
    }
    if (steps.empty()) return;
    auto stored = parts.store->transition_and_claim_each(steps);
    for (std::size_t k = 0; k < steps.size(); ++k) {
      if (of[k]->drafted) {
        after_draft_step(*of[k], steps[k].change, nexts[k], stored[k]);
      } else {
        after_send_step(of[k]->reply, nexts[k], stored[k]);
      }
    }
  }

  // A draft that came back: the change that stores it, and what its chat claims next (false:
  // it failed and is dealt with here).
  bool draft_step(const Reply& reply, const Result<Completion>& result, ReplyChange& change,
                  Continuation& next, Slots& slots, const Endings& ending) {
    if (!result.ok()) {
      if (result.status().code() == StatusCode::kCancelled) {
        if (!stopping.load()) {
          log(LogLevel::kWarning, fmt::format("drafting reply {} was cancelled: {}; given back",
                                              reply.id, result.status().to_string()));
        }
        give_back(reply);  // stopping: the next start drafts it again
      } else {
        fail_draft(reply, result.status());
      }
      return false;
    }
    change.from = ReplyStatus::kGenerating;
    change.to =
        policy.load() == ModerationPolicy::kAuto ? ReplyStatus::kApproved : ReplyStatus::kPending;
    change.draft_text = result->text;
    change.provider = result->provider;
    change.providers_tried = result->providers_tried;
    change.actor = reply.claimed_by;
    // Approved at once: the answer may go out, and the chat's next question be drafted, with
    // this write. A pending draft holds the chat until an operator decides.
    if (change.to == ReplyStatus::kApproved) {
      next = continuation(reply.chat_id, Ending::kDraft, slots, ending);
    } else {
      next.complete = true;
    }
    return true;
  }

  void after_draft_step(const Done& d, const ReplyChange& change, const Continuation& next,
                        Result<ChangeAndClaims>& stored) {
    if (failed(stored, fmt::format("storing the draft of reply {}", d.reply.id))) {
      finish_draft(d.reply);
      return;
    }
    {
      std::lock_guard lock(mu);
      ++counters.drafts;
    }
    if (change.to == ReplyStatus::kPending) post_draft(stored->reply, d.chat);
    // What comes next starts before this draft leaves the count, so that the drafts in flight
    // never exceed the limit in between (the worker counts them too).
    carry_on(next, *stored);
    finish_draft(d.reply, next.complete);
  }

  void fail_draft(const Reply& reply, const Status& why) {
    log(LogLevel::kWarning, fmt::format("reply {} failed: {}", reply.id, why.to_string()));
    ReplyChange change;
    change.from = ReplyStatus::kGenerating;
    change.to = ReplyStatus::kFailed;
    change.error = why.to_string();
    change.actor = reply.claimed_by;
    change.audit_action = "fail";
    change.detail = why.to_string();
    auto stored = parts.store->transition_reply(reply.id, change);
    finish_draft(reply);
    if (failed(stored, "storing a failed reply")) return;
    {
      std::lock_guard lock(mu);
      ++counters.failures;
    }
    // The apology goes out through the outbox like any answer.
    NewReply apology;
    apology.chat_id = reply.chat_id;
    apology.session_id = reply.session_id;
    apology.status = ReplyStatus::kApproved;
    apology.final_text = options.texts.failure;
    if (!failed(parts.store->create_reply(apology), "queueing the apology")) {
      touch(reply.chat_id);
    }
    auto chat = parts.store->get_chat(reply.chat_id);
    if (chat.ok()) {
      post_to_operators(fmt::format("⚠️ Reply #{} to {} failed: {}\nReply to this message to "
                                    "answer the user yourself.",
                                    reply.id, describe(*chat), why.message()),
                        fmt::format("reply:{}", reply.id), {});
    }
  }

  // ---- the outbox --------------------------------------------------------------------------

  // `retake_own`: also the answers this instance's name holds (a previous run's, at start-up).
  // Otherwise never: an answer this process is sending is held under its name, and claiming it
  // again could send it twice.
  void start_sends(const std::vector<ChatId>& chats, bool retake_own = false) {
    const int free = free_slots().sends;
    const int limit = std::min(free, 1000);
    if (free <= 0) return starve(kSendWork);
    auto claimed = parts.store->claim_replies(send_claim(chats, limit, retake_own));
    if (failed(claimed, "claiming answers to send")) return;
    if (static_cast<int>(claimed->size()) == limit) starve(kSendWork);  // more may wait
    for (auto& reply : *claimed) send(std::move(reply));
  }

  // A claim of answers to send, each the oldest unfinished reply of its chat.
  ClaimRequest send_claim(std::vector<ChatId> chats, int limit, bool retake_own) const {
    ClaimRequest q;
    q.status = ReplyStatus::kApproved;
    q.worker = worker;
    q.lease = std::chrono::minutes(2);
    q.limit = limit;
    q.head_of_chat_only = true;
    q.chat_ids = std::move(chats);
    q.retake_own = retake_own;
    q.channel = parts.transport->channel();
    return q;
  }

  // `known`: the reply's chat as read in the transaction that claimed the reply, if at hand.
  void send(Reply reply, const Chat* known = nullptr) {
    {
      std::lock_guard lock(mu);
      if (!sending.insert(reply.id).second) return;
      count_in_flight(chats_sending, reply.chat_id, 1, kSendWork);
      counters.sends_in_flight = static_cast<int>(sending.size());
    }
    auto chat = known ? Result<Chat>(*known) : parts.store->get_chat(reply.chat_id);
    if (failed(chat, "reading the chat of an answer")) {
      finish_send(reply);
      return;
    }
    if (chat->blocked) {
      give_up_send(reply, "the user blocked the bot");
      return;
    }
    OutboundMessage m;
    m.chat_external_id = chat->external_id;
    m.text = reply.final_text;
    m.format = options.format;
    // An operator's own message in a handoff chat (not an edited draft) is marked as a person's.
    const bool from_person = !reply.author.empty() && reply.question_id == 0;
    if (from_person) {
      m.text = fmt::format("👤 {}: {}", reply.author, reply.final_text);
    } else if (chat->mode == ChatMode::kBot && !options.texts.human_button.empty()) {
      m.buttons = {{{options.texts.human_button, std::string(kCallbackPrefix) + "handoff"}}};
    }
    parts.transport->send(
        std::move(m), [self = shared_from_this(), reply](Result<SentMessage> result) {
          self->completed(
              {.reply = reply, .drafted = std::nullopt, .sent = std::move(result), .chat = {}});
        });
  }

  // After the send's outcome is written: the chat's next answer or question may go on; the
  // worker looks unless `continued` (the write claimed them already).
  void finish_send(const Reply& reply, bool continued = false) {
    bool woke = false;
    {
      std::lock_guard lock(mu);
      if (sending.erase(reply.id)) {
        woke = count_in_flight(chats_sending, reply.chat_id, -1, kSendWork);
        woke = slot_freed(kSendWork) || woke;
      }
      counters.sends_in_flight = static_cast<int>(sending.size());
      settled.notify_all();
    }
    if (!continued) {
      touch(reply.chat_id);
    } else if (woke) {
      wake.notify_one();
    }
  }

  void after_send_step(const Reply& reply, const Continuation& next,
                       Result<ChangeAndClaims>& stored) {
    if (failed(stored, fmt::format("marking reply {} sent", reply.id))) {
      finish_send(reply);
      return;
    }
    {
      std::lock_guard lock(mu);
      ++counters.sent;
    }
    carry_on(next, *stored);  // before this send leaves the count, as after a draft
    finish_send(reply, next.complete);
  }

  // A send's outcome: when it went out, the change that marks it sent and what its chat claims
  // next; otherwise (false) what a failure calls for is done here.
  bool send_step(const Reply& reply, const Result<SentMessage>& result, ReplyChange& done,
                 Continuation& next, Slots& slots, const Endings& ending) {
    if (result.ok()) {
      done.from = ReplyStatus::kApproved;
      done.to = ReplyStatus::kSent;
      if (!result->message_ids.empty()) done.transport_message_id = result->message_ids.front();
      done.actor = worker;
      next = continuation(reply.chat_id, Ending::kSend, slots, ending);
      return true;
    }
    send_failed(reply, result.status());
    return false;
  }

  void send_failed(const Reply& reply, const Status& status) {
    if (status.code() == StatusCode::kPermissionDenied) {
      // The reply first: whoever sees the chat blocked sees its undeliverable answer too.
      mark_undeliverable(reply, status.message());
      failed(parts.store->set_chat_blocked(reply.chat_id, true), "marking a chat blocked");
    } else if (status.code() == StatusCode::kCancelled) {
      failed(parts.store->release_claim(reply.id, worker), "releasing an answer");
    } else if (reply.send_attempts + 1 >= options.max_send_attempts ||
               status.code() == StatusCode::kInvalidArgument) {
      give_up_send(reply, status.to_string());
      return;
    } else {
      std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(
          options.send_retry_base * (std::int64_t{1} << std::min(reply.send_attempts, 20)),
          options.send_retry_cap);
      if (auto after = status.retry_after()) delay = std::max(delay, *after);
      ReplyChange retry;
      retry.from = ReplyStatus::kApproved;
      retry.to = ReplyStatus::kApproved;
      retry.count_send = true;
      retry.error = status.to_string();
      retry.next_attempt_at = clock->now() + delay;
      retry.actor = worker;
      failed(parts.store->transition_reply(reply.id, retry), "scheduling a resend");
      log(LogLevel::kWarning, fmt::format("reply {}: sending failed ({}), again in {} ms", reply.id,
                                          status.to_string(), delay.count()));
      std::lock_guard lock(mu);
      ++counters.send_retries;
    }
    finish_send(reply);
  }

  void give_up_send(const Reply& reply, const std::string& why) {
    mark_undeliverable(reply, why);
    finish_send(reply);
  }

  void mark_undeliverable(const Reply& reply, const std::string& why) {
    ReplyChange change;
    change.from = ReplyStatus::kApproved;
    change.to = ReplyStatus::kFailed;
    change.count_send = true;
    change.error = why;
    change.actor = worker;
    change.audit_action = "undeliverable";
    change.detail = why;
    failed(parts.store->transition_reply(reply.id, change), "giving up an answer");
    log(LogLevel::kWarning, fmt::format("reply {} not delivered: {}", reply.id, why));
  }

  // ---- inbound -----------------------------------------------------------------------------

  Status on_event(const InboundEvent& e) {
    if (!options.operator_chat_id.empty() && e.chat_external_id == options.operator_chat_id) {
      return e.kind == InboundKind::kCallback ? on_operator_callback(e) : on_operator_message(e);
    }
    switch (e.kind) {
      case InboundKind::kCallback:
        return on_user_callback(e);
      case InboundKind::kBlocked:
      case InboundKind::kUnblocked: {
        auto chat =
            parts.store->upsert_chat({e.channel, e.chat_external_id, e.chat_title, e.username});
        if (!chat.ok()) return chat.status();
        return parts.store->set_chat_blocked(chat->id, e.kind == InboundKind::kBlocked);
      }
      case InboundKind::kEditedMessage:
        return Status();  // the answer to the original stands; edits are not re-answered
      case InboundKind::kMessage:
        return on_message(e);
    }
    return Status();
  }

  // Events in a row that are questions for the assistant are stored in one transaction (one
  // commit for a whole page of getUpdates); anything else is handled on its own, in order.
  InboundAck on_events(std::span<const InboundEvent> events) {
    std::size_t done = 0;
    while (done < events.size()) {
      // The chats of the run of user messages from here, read (or made) in one call.
      std::size_t end = done;
      while (end < events.size() && is_user_message(events[end])) ++end;
      std::vector<Chat> chats;
      if (end > done) {
        std::vector<ChatInfo> infos;
        infos.reserve(end - done);
        for (std::size_t i = done; i < end; ++i) infos.push_back(chat_info(events[i]));
        auto upserted = parts.store->upsert_chats(infos);
        if (!upserted.ok()) return {done, upserted.status()};
        chats = std::move(upserted).value();
      }
      std::vector<Incoming> questions;
      Status status;
      for (std::size_t i = done; i < end; ++i) {
        auto in = read_message(events[i], std::move(chats[i - done]));
        if (!in.ok()) {
          status = in.status();
          break;
        }
        if (!in->message.open_reply && !in->over_limit) break;
        questions.push_back(std::move(in).value());
      }
      if (questions.empty()) {
        if (status.ok()) status = on_event(events[done]);
        if (!status.ok()) return {done, status};
        ++done;
        continue;
      }
      std::vector<InboundMessage> messages;
      messages.reserve(questions.size());
      for (const auto& q : questions) messages.push_back(q.message);
      auto stored = parts.store->append_inbound(messages);
      if (!stored.ok()) return {done, stored.status()};
      for (std::size_t k = 0; k < questions.size(); ++k) after_stored(questions[k], (*stored)[k]);
      done += questions.size();
    }
    return {done, Status()};
  }

  bool is_user_message(const InboundEvent& e) const {
    return e.kind == InboundKind::kMessage &&
           (options.operator_chat_id.empty() || e.chat_external_id != options.operator_chat_id);
  }

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

  static ChatInfo chat_info(const InboundEvent& e) {
    return {e.channel, e.chat_external_id, e.chat_title.empty() ? e.user_name : e.chat_title,
            e.username};
  }

  Result<Incoming> read_message(const InboundEvent& e) {
    LLMASSIST_ASSIGN_OR_RETURN(Chat chat, parts.store->upsert_chat(chat_info(e)));
    return read_message(e, std::move(chat));
  }

  // `chat`: the message's chat, as upsert_chat() gave it.
  Result<Incoming> read_message(const InboundEvent& e, Chat chat) {
    Incoming in;
    in.event = &e;
    in.chat = std::move(chat);
    if (in.chat.blocked) {  // writing again means they unblocked the bot
      LLMASSIST_RETURN_IF_ERROR(parts.store->set_chat_blocked(in.chat.id, false));
      in.chat.blocked = false;
    }
    const std::string text = detail::trimmed(e.text);
    InboundMessage& m = in.message;
    m.chat_id = in.chat.id;
    m.text = text.empty() && !e.media.empty() ? fmt::format("[{}]", e.media) : e.text;
    m.author = e.user_name;
    m.dedup_key = e.dedup_key;
    m.transport_message_id = e.message_id;
    m.sent_at = e.sent_at == Timestamp{} ? std::optional<Timestamp>() : e.sent_at;
    in.start = is_command(text, "/start");
    in.human = is_command(text, "/human");
    in.back = is_command(text, "/bot") && in.chat.mode == ChatMode::kOperator;
    m.open_reply =
        !in.start && !in.human && !in.back && !text.empty() && in.chat.mode == ChatMode::kBot;
    if (m.open_reply && over_rate_limit(e, in.tell_slow_down)) {
      m.open_reply = false;
      in.over_limit = true;
    }
    return in;
  }

  // Counts a question of `e`'s user; true when it is past options.rate_limit (`first`: the
  // first of its window to be).
  bool over_rate_limit(const InboundEvent& e, bool& first) {
    const InboundRateLimit& limit = options.rate_limit;
    if (limit.messages <= 0) return false;
    const Timestamp now = clock->now();
    std::lock_guard lock(rate_mu);
    if (rates.size() > 100000) {  // users quiet for a window are forgotten
      std::erase_if(rates, [&](const auto& r) { return now - r.second.start >= limit.per; });
    }
    RateWindow& w =
        rates[fmt::format("{}:{}", e.channel, e.user_id.empty() ? e.chat_external_id : e.user_id)];
    if (w.count == 0 || now - w.start >= limit.per) w = RateWindow{now, 0};
    ++w.count;
    first = w.count == limit.messages + 1;
    return w.count > limit.messages;
  }

  Status on_message(const InboundEvent& e) {
    LLMASSIST_ASSIGN_OR_RETURN(Incoming in, read_message(e));
    if (in.start) LLMASSIST_RETURN_IF_ERROR(parts.store->restart_session(in.chat.id).status());
    LLMASSIST_ASSIGN_OR_RETURN(InboundResult stored, append_inbound(*parts.store, in.message));
    after_stored(in, stored);
    return Status();
  }

  // What a stored message asks for: an answer, a command, the operators' attention.
  void after_stored(const Incoming& in, const InboundResult& stored) {
    {
      std::lock_guard lock(mu);
      ++(stored.duplicate ? counters.duplicates : counters.inbound);
    }
    if (stored.duplicate) return;  // handled when it first came
    const Chat& chat = in.chat;
    if (stored.reply_id != 0) touch(chat.id, kDraftWork);
    parts.memory->observe(stored.message);

    const std::string& user = in.event->user_id;
    if (in.start) {
      notify(chat, options.texts.welcome);
    } else if (in.human) {
      handoff(chat, "user:" + user);
    } else if (in.back) {
      handback(chat, "user:" + user);
    } else if (chat.mode == ChatMode::kOperator) {
      post_to_operators(fmt::format("💬 {}: {}\n(Reply to this message to answer; send /bot in "
                                    "your reply to hand the chat back.)",
                                    describe(chat), in.message.text),
                        fmt::format("chat:{}", chat.id), {});
    } else if (in.message.open_reply && policy.load() == ModerationPolicy::kReview) {
      notify(chat, options.texts.review_notice);
    } else if (in.tell_slow_down) {
      log(LogLevel::kWarning,
          fmt::format("chat {}: user {} writes faster than {} messages in {} s; further messages "
                      "are stored and not answered until the window ends",
                      chat.id, user, options.rate_limit.messages, options.rate_limit.per.count()));
      notify(chat, options.texts.slow_down);
    }
  }

  Status on_user_callback(const InboundEvent& e) {
    parts.transport->answer_callback(e.callback_id, "", [](Status) {});
    if (e.callback_data != std::string(kCallbackPrefix) + "handoff") return Status();
    LLMASSIST_ASSIGN_OR_RETURN(Chat chat, parts.store->upsert_chat({e.channel, e.chat_external_id,
                                                                    e.chat_title, e.username}));
    handoff(chat, "user:" + e.user_id);
    return Status();
  }

  void handoff(const Chat& chat, const std::string& actor) {
    if (chat.mode == ChatMode::kOperator) {
      notify(chat, options.texts.already_human);
      return;
    }
    if (failed(parts.store->set_chat_mode(chat.id, ChatMode::kOperator, actor), "handoff")) return;
    notify(chat, options.texts.handoff);
    post_to_operators(fmt::format("🙋 {} asks for a person. Reply to this message to answer; "
                                  "send /bot in your reply to hand the chat back.",
                                  describe(chat)),
                      fmt::format("chat:{}", chat.id), {});
  }

  void handback(const Chat& chat, const std::string& actor) {
    if (failed(parts.store->set_chat_mode(chat.id, ChatMode::kBot, actor), "handback")) return;
    notify(chat, options.texts.handback);
  }

  // ---- data retention ----------------------------------------------------------------------

  void purge_old() {
    if (options.retention_days <= 0 || stopping) return;
    const Timestamp cutoff = clock->now() - std::chrono::hours(24) * options.retention_days;
    auto n = parts.store->delete_older_than(cutoff);
    if (!n.ok()) {
      log(LogLevel::kWarning, fmt::format("retention: {}", n.status().to_string()));
    } else if (n->messages + n->replies + n->audit_events + n->sessions > 0) {
      log(LogLevel::kInfo,
          fmt::format("retention: deleted {} messages, {} replies, {} audit events and {} "
                      "sessions older than {} days",
                      n->messages, n->replies, n->audit_events, n->sessions,
                      options.retention_days));
    }
    scheduler->schedule(std::chrono::hours(1), [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->purge_old();
    });
  }

  // ---- the operators' chat -----------------------------------------------------------------

  static std::string describe(const Chat& chat) {
    return fmt::format("{} ({} {})", chat.title.empty() ? "a user" : chat.title, chat.channel,
                       chat.external_id);
  }

  // How a person in the operators' chat is shown to users ("👤 alice: ...").
  static std::string operator_name(const InboundEvent& e) {
    return e.username.empty() ? (e.user_name.empty() ? e.user_id : e.user_name) : e.username;
  }

  // Who decides, in the audit log and the claims: "telegram:<user id>", which no display name
  // can imitate and no web account ("operator:<name>") can be taken for.
  static std::string operator_actor(const InboundEvent& e) {
    return fmt::format("{}:{}", e.channel, e.user_id);
  }

  // Whether `e`'s sender may decide; when not, says so in the log.
  bool is_operator(const InboundEvent& e, std::string_view what) {
    const auto& ops = options.operators;
    if (!e.user_id.empty() && std::find(ops.begin(), ops.end(), e.user_id) != ops.end()) {
      return true;
    }
    log(LogLevel::kWarning,
        fmt::format("operators' chat: refused {} from user {} (\"{}\"), who is not in "
                    "assistant.operators",
                    what, e.user_id, operator_name(e)));
    return false;
  }

  void post_draft(const Reply& reply, const Chat& chat) {
    if (options.operator_chat_id.empty()) return;
    auto question = parts.store->get_message(reply.question_id);
    const std::string q = question.ok() ? question->text : "";
    const std::string id = std::to_string(reply.id);
    post_to_operators(
        fmt::format("📝 Draft #{} for {}\n\nQuestion:\n{}\n\nDraft:\n{}\n\n(Reply to this message "
                    "with your own text to send that instead.)",
                    reply.id, describe(chat), q, reply.draft_text),
        "reply:" + id,
        {{{"Approve", std::string(kCallbackPrefix) + "approve:" + id},
          {"Edit", std::string(kCallbackPrefix) + "edit:" + id},
          {"Reject", std::string(kCallbackPrefix) + "reject:" + id}}});
  }

  // Posts to the operators' chat and remembers what the post is about, so that a reply to it
  // can be routed ("reply:<id>" or "chat:<id>").
  void post_to_operators(std::string text, std::string about,
                         std::vector<std::vector<Button>> buttons) {
    if (options.operator_chat_id.empty()) return;
    OutboundMessage m;
    m.chat_external_id = options.operator_chat_id;
    m.text = std::move(text);
    m.buttons = std::move(buttons);
    parts.transport->send(std::move(m), [self = shared_from_this(), about](Result<SentMessage> r) {
      if (self->failed(r, "posting to the operators' chat")) return;
      for (const auto& id : r->message_ids) {
        self->failed(self->parts.store->put_setting(std::string(kPostKey) + id, about),
                     "remembering an operators' post");
      }
    });
  }

  // An operator's decision taken here: the reply's chat has work (an answer to send, a draft to
  // make again).
  Status decided(const Result<Reply>& r) {
    if (r.ok()) touch(r->chat_id);
    return r.status();
  }

  Status on_operator_callback(const InboundEvent& e) {
    const std::string data = e.callback_data;
    std::string notice;
    if (data.rfind(kCallbackPrefix, 0) == 0) {
      const std::string rest = data.substr(kCallbackPrefix.size());
      const auto colon = rest.find(':');
      const std::string action = rest.substr(0, colon);
      const ReplyId id = colon == std::string::npos ? 0 : std::atoll(rest.c_str() + colon + 1);
      const std::string who = operator_actor(e);
      Status s;
      if (!is_operator(e, "a button (" + action + ")")) {
        notice = options.texts.not_operator;
      } else if (action == "approve") {
        s = decided(parts.moderation->approve(id, who));
        notice = s.ok() ? "Approved" : s.message();
      } else if (action == "reject") {
        s = decided(parts.moderation->reject(id, who, "rejected in the operators' chat"));
        notice = s.ok() ? "Rejected: a new draft is coming" : s.message();
      } else if (action == "edit") {
        notice = "Reply to the draft message with the text to send instead.";
      }
    }
    parts.transport->answer_callback(e.callback_id, notice, [](Status) {});
    return Status();
  }

  Status on_operator_message(const InboundEvent& e) {
    if (e.kind != InboundKind::kMessage || e.reply_to_message_id.empty()) return Status();
    auto about = parts.store->get_setting(std::string(kPostKey) + e.reply_to_message_id);
    if (!about.ok()) {
      // Not a post of ours, or a store that keeps no settings (nothing to route by).
      const StatusCode code = about.status().code();
      return code == StatusCode::kNotFound || code == StatusCode::kUnimplemented ? Status()
                                                                                 : about.status();
    }
    const std::string who = operator_actor(e);
    const std::string text = detail::trimmed(e.text);
    if (text.empty()) return Status();
    Status outcome;
    if (!is_operator(e, "a reply to " + *about)) {
      OutboundMessage m;
      m.chat_external_id = options.operator_chat_id;
      m.text = "⚠️ " + options.texts.not_operator;
      m.reply_to_message_id = e.message_id;
      parts.transport->send(std::move(m), [](Result<SentMessage>) {});
      return Status();
    }
    if (about->rfind("reply:", 0) == 0) {
      const ReplyId id = std::atoll(about->c_str() + 6);
      if (is_command(text, "/approve")) {
        outcome = decided(parts.moderation->approve(id, who));
      } else if (is_command(text, "/reject")) {
        outcome = decided(parts.moderation->reject(id, who, command_argument(text)));
      } else {
        outcome = decided(parts.moderation->edit(id, who, text));
      }
    } else if (about->rfind("chat:", 0) == 0) {
      const ChatId chat_id = std::atoll(about->c_str() + 5);
      LLMASSIST_ASSIGN_OR_RETURN(Chat chat, parts.store->get_chat(chat_id));
      if (is_command(text, "/bot")) {
        handback(chat, who);
      } else {
        NewReply answer;
        answer.chat_id = chat_id;
        answer.status = ReplyStatus::kApproved;
        answer.final_text = text;
        answer.author = operator_name(e);
        answer.actor = who;
        answer.audit_action = "handoff_reply";
        outcome = parts.store->create_reply(answer).status();
        if (outcome.ok()) touch(chat_id);
      }
    }
    if (!outcome.ok()) {
      OutboundMessage m;
      m.chat_external_id = options.operator_chat_id;
      m.text = "⚠️ " + outcome.message();
      m.reply_to_message_id = e.message_id;
      parts.transport->send(std::move(m), [](Result<SentMessage>) {});
    }
    return Status();
  }

  // A notice the bot sends on its own: straight to the chat, kept in the log as a system line
  // (the memory leaves those out of the prompt).
  void notify(const Chat& chat, const std::string& text) {
    if (text.empty()) return;
    OutboundMessage m;
    m.chat_external_id = chat.external_id;
    m.text = text;
    parts.transport->send(std::move(m), [self = shared_from_this()](Result<SentMessage> r) {
      self->failed(r, "sending a notice");
    });
    NewMessage note;
    note.chat_id = chat.id;
    note.role = Role::kSystem;
    note.text = text;
    note.author = "bot";
    failed(parts.store->append_message(note), "logging a notice");
  }
};

Result<std::unique_ptr<Assistant>> Assistant::create(AssistantParts parts,
                                                     AssistantOptions options) {
  if (!parts.transport || !parts.store || !parts.llm || !parts.memory) {
    return invalid_argument("an assistant needs a transport, a store, an LLM and a memory");
  }
  if (!options.operator_chat_id.empty() && !parts.moderation) {
    return invalid_argument("an operators' chat needs a moderation queue");
  }
  if (!options.operator_chat_id.empty() && options.operators.empty()) {
    return invalid_argument(
        "an operators' chat needs its operators: list the user ids who may decide there "
        "(assistant.operators)");
  }
  if (options.retention_days < 0) return invalid_argument("retention_days must not be negative");
  if (options.rate_limit.messages < 0 || options.rate_limit.per.count() <= 0) {
    return invalid_argument("rate_limit: messages must be 0 or more, per at least 1 s");
  }
  if (options.instance.empty()) return invalid_argument("the instance name is empty");
  if (options.max_concurrent_drafts < 1 || options.max_concurrent_sends < 1) {
    return invalid_argument("the concurrency limits must be at least 1");
  }
  auto impl = std::make_shared<Impl>();
  impl->parts = std::move(parts);
  impl->options = std::move(options);
  impl->clock = impl->options.clock ? impl->options.clock : system_clock();
  impl->logger = impl->options.logger ? impl->options.logger : stderr_logger();
  impl->scheduler = impl->options.scheduler ? impl->options.scheduler : make_thread_scheduler();
  impl->worker = "bot:" + impl->options.instance;
  return std::unique_ptr<Assistant>(new Assistant(std::move(impl)));
}

Assistant::Assistant(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Assistant::~Assistant() { stop(std::chrono::milliseconds(0)); }

Status Assistant::start() {
  Impl& i = *impl_;
  if (i.pump.joinable()) return failed_precondition("the assistant is already running");
  i.stopping = false;
  i.policy = i.options.policy;
  i.refresh_settings();
  // A previous run of this instance may have died mid-draft or mid-send: its claims carry our
  // name, so they are ours to take again at once rather than after their lease.
  i.start_writer();
  i.claim_and_draft(ReplyStatus::kGenerating, i.worker, {});
  i.start_sends({}, /*retake_own=*/true);
  i.pump = std::thread([impl = impl_] { impl->run(); });
  if (i.options.retention_days > 0) {
    i.scheduler->schedule(std::chrono::milliseconds(0), [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto self = weak.lock()) self->purge_old();
    });
  }
  Status s = i.parts.transport->start(
      [weak = std::weak_ptr<Impl>(impl_)](std::span<const InboundEvent> events) -> InboundAck {
        auto self = weak.lock();
        if (!self) return {0, cancelled("the assistant is gone")};
        return self->on_events(events);
      });
  if (!s.ok()) {
    {
      std::lock_guard lock(i.mu);
      i.stopping = true;
    }
    i.wake.notify_all();
    i.pump.join();
    i.stop_writer();
    return s;
  }
  i.log(LogLevel::kInfo,
        fmt::format("started as {} on {} ({} policy)", i.worker, i.parts.transport->channel(),
                    i.options.policy == ModerationPolicy::kAuto ? "auto" : "review"));
  return Status();
}

void Assistant::stop(std::chrono::milliseconds grace) {
  Impl& i = *impl_;
  if (!i.pump.joinable()) return;
  {
    std::lock_guard lock(i.mu);
    i.stopping = true;
  }
  i.wake.notify_all();
  std::vector<std::shared_ptr<CancelToken>> unfinished;
  {
    std::unique_lock lock(i.mu);
    i.settled.wait_for(lock, grace, [&] { return i.drafting.empty() && i.sending.empty(); });
    for (auto& [id, d] : i.drafting) unfinished.push_back(d.token);
  }
  // Outside the lock: a provider may complete a cancelled request at once.
  for (auto& token : unfinished) token->cancel();
  i.parts.transport->stop();
  i.pump.join();
  {
    std::unique_lock lock(i.mu);
    // Cancelled drafts report back through their providers; give them a moment.
    i.settled.wait_for(lock, std::chrono::seconds(5), [&] { return i.drafting.empty(); });
  }
  i.stop_writer();
  i.log(LogLevel::kInfo, "stopped");
}

AssistantStats Assistant::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

}  // namespace llmassist
