#include "core/assistant/dispatcher.h"

#include <algorithm>
#include <utility>

#include "core/assistant/core.h"
#include "core/store_support.h"
#include "llmassist/runtime_settings.h"

namespace llmassist::detail::assistant {

void Dispatcher::start() {
  pump_ = std::thread([self = core_.shared_from_this()] { self->dispatcher.run(); });
  watcher_ = std::thread([self = core_.shared_from_this()] { self->dispatcher.watch(); });
}

void Dispatcher::stop() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  wake_.notify_all();
  if (pump_.joinable()) pump_.join();
  if (watcher_.joinable()) watcher_.join();
}

// The store's change notification (LISTEN/NOTIFY on PostgreSQL, the file's data version on
// SQLite) wakes the worker for a look at the whole store: another process's decision or reply
// is taken up at once, not at the next rescan.
void Dispatcher::watch() {
  detail::watch_store_changes(
      *core_.ctx.parts.store, kWatchSlice, [this] { return core_.ctx.stopping.load(); },
      [this] {
        {
          std::lock_guard lock(mu_);
          store_changed_ = true;
          woken_ = true;
        }
        wake_.notify_all();
      });
}

void Dispatcher::refresh_settings() {
  const Context& ctx = core_.ctx;
  // One refresh at a time, each reading after the one before it applied: a read made before an
  // admin's change must not be applied after a read made since.
  std::lock_guard one_at_a_time(settings_mu_);
  auto settings = read_runtime_settings(*ctx.parts.store);
  if (ctx.failed(settings, "reading the runtime settings")) return;
  const ModerationPolicy now = settings->policy.value_or(ctx.options.policy);
  if (core_.ctx.policy.exchange(now) != now) {
    ctx.log(LogLevel::kInfo, fmt::format("moderation policy now {}",
                                         now == ModerationPolicy::kAuto ? "auto" : "review"));
  }
  core_.ctx.set_system_prompt(settings->system_prompt.value_or(""));
}

// Looking at the whole store costs in proportion to the replies waiting; looking at one chat
// costs little. So this process's own work wakes the worker for the chats it touched (marked
// after each write, so the worker finds it committed), and the worker looks at everything
// every rescan_interval: for other processes' decisions and for retries that came due.
void Dispatcher::run() {
  Context& ctx = core_.ctx;
  auto last_scan = MonotonicClock::time_point{};
  bool change_seen = false;  // the store changed since the last look at all of it
  while (true) {
    std::map<ChatId, unsigned> chats;
    unsigned any_chat = 0;  // work to claim over all chats
    bool sweep = false;
    MonotonicClock::time_point now;
    {
      std::unique_lock lock(mu_);
      auto deadline = last_scan + ctx.options.rescan_interval;
      if (change_seen) deadline = std::min(deadline, last_scan + kChangeScanGap);
      if (next_sweep_) deadline = std::min(deadline, *next_sweep_);
      ctx.monotonic->wait_until(wake_, lock, deadline,
                                [&] { return woken_ || ctx.stopping.load(); });
      if (ctx.stopping.load()) return;
      woken_ = false;
      change_seen = change_seen || std::exchange(store_changed_, false);
      now = ctx.monotonic->now();
      if (next_sweep_ && now >= *next_sweep_) {
        sweep = true;
        next_sweep_.reset();
      }
      chats.swap(touched_);
      any_chat = std::exchange(unblocked_, 0u);
      // A chat with a draft (a send) in flight has no other to start until that one ends,
      // and its end claims the next: the work waits for it instead of a claim that finds
      // nothing.
      for (auto& [chat, what] : chats) {
        for (auto [work, in_flight] :
             {std::pair{kDraftWork, &chats_drafting_}, std::pair{kSendWork, &chats_sending_}}) {
          if ((what & work) && in_flight->count(chat)) {
            what &= ~work;
            deferred_[chat] |= work;
          }
        }
      }
    }
    if (sweep) {
      core_.drafting.sweep(now);
      std::lock_guard lock(mu_);
      if (drafts_ > 0 && !next_sweep_ && !ctx.stopping.load()) next_sweep_ = now + sweep_period();
    }
    recover_stale(now);
    if (now - last_scan >= ctx.options.rescan_interval ||
        (change_seen && now - last_scan >= kChangeScanGap)) {
      last_scan = now;
      change_seen = false;
      refresh_settings();
      core_.drafting.start_drafts({});
      core_.outbox.start_sends({});
    } else {
      // Slots came free while replies of any chat waited for one: a claim over all chats
      // (which covers the touched chats' work of that kind too).
      unsigned covered = 0;
      if (any_chat & kDraftWork) {
        core_.drafting.start_drafts({});
        covered |= kDraftWork | kRedraftWork;
      }
      if (any_chat & kSendWork) {
        core_.outbox.start_sends({});
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
      // Drafting reads the settings after each claim (claim_and_draft()): an admin's change
      // holds for the next question asked.
      if (auto these = with(kDraftWork); !these.empty()) {
        core_.drafting.claim_and_draft(ReplyStatus::kNew, ctx.worker, these);
      }
      if (auto redraft = with(kRedraftWork); !redraft.empty()) {
        core_.drafting.claim_and_draft(ReplyStatus::kRejected, ctx.worker, redraft);
      }
      if (auto sends = with(kSendWork); !sends.empty()) core_.outbox.start_sends(sends);
    }
  }
}

// Drafts whose worker died: their lease ran out. Claimed under a name used once, so that no
// live claim of this process (renewed, never run out) is matched by its name.
void Dispatcher::recover_stale(MonotonicClock::time_point now) {
  const Context& ctx = core_.ctx;
  if (now - last_recovery_ < ctx.options.lease_renewal) return;
  last_recovery_ = now;
  core_.drafting.claim_and_draft(ReplyStatus::kGenerating,
                                 fmt::format("{}#r{}", ctx.worker, ++recoveries_), {});
  retake_orphans();
}

// A run of this instance killed while its claim's transaction was still at the server leaves
// a claim under this name that commits after this run's start took its own claims back (on
// PostgreSQL the start's claim skips the row the dying transaction still locks): nothing here
// works on it, and its lease would hold it for a minute or two. Such claims are taken back
// here, by id. One only just made by this process and not yet begun is left alone (a claim
// older than a few seconds is begun or done).
void Dispatcher::retake_orphans() {
  const Context& ctx = core_.ctx;
  const Timestamp settled = ctx.clock->now() - std::chrono::seconds(5);
  for (const ReplyStatus status : {ReplyStatus::kGenerating, ReplyStatus::kApproved}) {
    ReplyQuery q;
    q.status = status;
    q.limit = 1000;
    auto found = ctx.parts.store->list_replies(q);
    if (ctx.failed(found, "looking for this process's orphaned claims")) continue;
    for (const Reply& r : *found) {
      if (r.claimed_by != ctx.worker || r.updated_at > settled) continue;
      const bool drafting = status == ReplyStatus::kGenerating;
      if (drafting ? core_.drafting.in_flight(r.id) : sending(r.id)) continue;
      ClaimRequest c = drafting ? core_.drafting.draft_claim(status, ctx.worker, {}, 1, true, {})
                                : core_.outbox.send_claim({}, 1, true, {});
      c.reply_id = r.id;
      auto claimed = ctx.parts.store->claim_replies(c);
      if (!claimed.ok()) continue;  // taken, decided or sent meanwhile
      ctx.log(LogLevel::kInfo,
              fmt::format("reply {}: taking back a claim of this instance's previous run", r.id));
      for (auto& taken : *claimed) {
        if (drafting) {
          core_.drafting.draft(std::move(taken));
        } else {
          core_.outbox.send(std::move(taken));
        }
      }
    }
  }
}

bool Dispatcher::sending(ReplyId id) const {
  std::lock_guard lock(mu_);
  return sending_.count(id) > 0;
}

// A sweep's period: a fraction of the shortest interval it keeps, within 10-250 ms.
std::chrono::milliseconds Dispatcher::sweep_period() const {
  const AssistantOptions& o = core_.ctx.options;
  const auto shortest = std::min({o.typing_delay, o.typing_interval, o.lease_renewal});
  return std::clamp<std::chrono::milliseconds>(shortest / 4, std::chrono::milliseconds(10),
                                               std::chrono::milliseconds(250));
}

bool Dispatcher::count_in_flight(std::map<ChatId, int>& in_flight, ChatId chat, int by,
                                 unsigned work) {
  int& n = in_flight[chat];
  n += by;
  if (n > 0) return false;
  in_flight.erase(chat);
  auto it = deferred_.find(chat);
  if (it == deferred_.end() || !(it->second & work)) return false;
  touched_[chat] |= work;
  woken_ = true;
  if ((it->second &= ~work) == 0) deferred_.erase(it);
  return true;
}

bool Dispatcher::slot_freed(unsigned work) {
  if (!(starved_ & work) || core_.ctx.stopping.load()) return false;
  starved_ &= ~work;
  unblocked_ |= work;
  woken_ = true;
  return true;
}

void Dispatcher::begin_draft(ChatId chat) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    ++drafts_;
    count_in_flight(chats_drafting_, chat, 1, kDraftWork);
    counters_.drafts_in_flight = drafts_;
    if (!next_sweep_) {
      next_sweep_ = core_.ctx.monotonic->now() + sweep_period();
      woken_ = first = true;
    }
  }
  if (first) wake_.notify_one();  // to wait for the sweep
}

void Dispatcher::end_draft(ChatId chat, bool continued) {
  bool woke = false;
  {
    std::lock_guard lock(mu_);
    --drafts_;
    woke = count_in_flight(chats_drafting_, chat, -1, kDraftWork);
    woke = slot_freed(kDraftWork) || woke;
    counters_.drafts_in_flight = drafts_;
    settled_.notify_all();
  }
  if (!continued) {
    touch(chat);
  } else if (woke) {
    wake_.notify_one();
  }
}

bool Dispatcher::begin_send(ReplyId id, ChatId chat) {
  std::lock_guard lock(mu_);
  if (!sending_.insert(id).second) return false;
  count_in_flight(chats_sending_, chat, 1, kSendWork);
  counters_.sends_in_flight = static_cast<int>(sending_.size());
  return true;
}

void Dispatcher::end_send(ReplyId id, ChatId chat, bool continued) {
  bool woke = false;
  {
    std::lock_guard lock(mu_);
    if (sending_.erase(id)) {
      woke = count_in_flight(chats_sending_, chat, -1, kSendWork);
      woke = slot_freed(kSendWork) || woke;
    }
    counters_.sends_in_flight = static_cast<int>(sending_.size());
    settled_.notify_all();
  }
  if (!continued) {
    touch(chat);
  } else if (woke) {
    wake_.notify_one();
  }
}

void Dispatcher::touch(ChatId chat, unsigned work) {
  {
    std::lock_guard lock(mu_);
    touched_[chat] |= work;
    woken_ = true;
  }
  wake_.notify_one();
}

void Dispatcher::starve(unsigned work) {
  std::lock_guard lock(mu_);
  starved_ |= work;
}

Slots Dispatcher::free_slots() const {
  const AssistantOptions& o = core_.ctx.options;
  std::lock_guard lock(mu_);
  return {o.max_concurrent_drafts - drafts_,
          o.max_concurrent_sends - static_cast<int>(sending_.size())};
}

Dispatcher::Others Dispatcher::others_in_flight(ChatId chat, int drafts, int sends) const {
  std::lock_guard lock(mu_);
  const auto count = [&](const std::map<ChatId, int>& of) {
    const auto it = of.find(chat);
    return it == of.end() ? 0 : it->second;
  };
  return {count(chats_drafting_) > drafts, count(chats_sending_) > sends};
}

void Dispatcher::count(std::int64_t AssistantStats::*counter) {
  std::lock_guard lock(mu_);
  ++(counters_.*counter);
}

AssistantStats Dispatcher::stats() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void Dispatcher::wait_settled(std::chrono::milliseconds grace, bool drafts_only) {
  std::unique_lock lock(mu_);
  settled_.wait_for(lock, grace, [&] { return drafts_ == 0 && (drafts_only || sending_.empty()); });
}

}  // namespace llmassist::detail::assistant
