// The Assistant's worker: the one thread that claims work from the store and hands it to the
// drafting and the outbox, and the board of what is in flight that it decides by (drafts and
// sends per chat, the free slots, the chats this process touched). Woken by every write of this
// process that gives a chat work; looks at the whole store when the store says it changed (a
// watching thread waits on MessageStore::wait_for_change(): other processes' decisions and
// questions), at most every kChangeScanGap, and every rescan_interval in any case (retries that
// came due); runs the drafting's sweep (typing, claims'
// renewals) while drafts are in the making. Times everything on the injected MonotonicClock.
//
// Thread-safety: the board's methods from any thread; start() and stop() from one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "core/assistant/context.h"

namespace llmassist::detail::assistant {

struct Core;

// Drafts and sends that may still begin under the limits.
struct Slots {
  int drafts = 0;
  int sends = 0;
};

class Dispatcher {
 public:
  explicit Dispatcher(Core& core) : core_(core) {}
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void start();
  // Context::stopping is set: wakes the worker and joins it.
  void stop();
  [[nodiscard]] bool running() const { return pump_.joinable(); }

  // Takes up the runtime settings from the store. Any thread.
  void refresh_settings();

  // A draft (a send) of `chat` begins, or ends: when its end was not `continued` by a claim of
  // the chat's next steps in the same write, the worker looks at the chat.
  void begin_draft(ChatId chat);
  void end_draft(ChatId chat, bool continued);
  // False when the reply is being sent here already.
  bool begin_send(ReplyId id, ChatId chat);
  void end_send(ReplyId id, ChatId chat, bool continued);
  // Whether reply `id` is being sent here.
  [[nodiscard]] bool sending(ReplyId id) const;

  // Wakes the worker for `chat`: call after the write that gave the chat work; `work`, what it
  // may be (a question stored needs a draft and nothing else).
  void touch(ChatId chat, unsigned work = kAnyWork);
  // A full slot held `work` back: the slot that frees next wakes the worker for a claim over
  // all chats, instead of leaving the waiting replies of other chats to the next rescan.
  void starve(unsigned work);
  [[nodiscard]] Slots free_slots() const;
  // Whether another draft (send) of `chat` is in flight beyond the `drafts` (`sends`) of it
  // that end in the batch being written.
  struct Others {
    bool draft = false;
    bool send = false;
  };
  [[nodiscard]] Others others_in_flight(ChatId chat, int drafts, int sends) const;

  void count(std::int64_t AssistantStats::*counter);
  [[nodiscard]] AssistantStats stats() const;
  // Waits up to `grace` (real time: a shutdown's wait) until no draft, and unless
  // `drafts_only` no send, is in flight.
  void wait_settled(std::chrono::milliseconds grace, bool drafts_only);

 private:
  void run();
  void watch();
  void recover_stale(MonotonicClock::time_point now);
  // Claims under this process's own name that nothing here works on (drafts and sends).
  void retake_orphans();
  // Under mu_: one more (`by` = 1) or one less (-1) of a chat's drafts or sends in flight; when
  // the last one ends, the work deferred to it goes back to the worker. True when woken.
  bool count_in_flight(std::map<ChatId, int>& in_flight, ChatId chat, int by, unsigned work);
  // Under mu_: a slot of `work` came free; true when the worker is to be woken.
  bool slot_freed(unsigned work);
  [[nodiscard]] std::chrono::milliseconds sweep_period() const;

  Core& core_;
  mutable std::mutex mu_;
  std::condition_variable wake_;     // the worker waits on it
  std::condition_variable settled_;  // drafts or sends finished
  bool woken_ = false;
  bool store_changed_ = false;  // the watcher saw a change the worker has not looked at
  int drafts_ = 0;              // in flight
  std::set<ReplyId> sending_;   // in flight
  // Chats with work this process caused.
  std::map<ChatId, unsigned> touched_;
  // Chats with a draft or a send of this process in flight: a claim of their next one finds
  // nothing until that one ends, and its end claims the next.
  std::map<ChatId, int> chats_drafting_;
  std::map<ChatId, int> chats_sending_;
  // Work the worker was told of for such a chat, left to the end of what is in flight there.
  std::map<ChatId, unsigned> deferred_;
  // Work a full slot held back (kDraftWork, kSendWork), and that a freed slot unblocked.
  unsigned starved_ = 0;
  unsigned unblocked_ = 0;
  // The drafting's next sweep, while drafts are in flight.
  std::optional<MonotonicClock::time_point> next_sweep_;
  std::thread watcher_;
  std::mutex settings_mu_;  // held by refresh_settings()
  // A change seen makes a look at the whole store at most this often (a busy store changes all
  // the time; most changes are this process's own, already handed to the worker).
  static constexpr std::chrono::milliseconds kChangeScanGap{200};
  // How long one wait of the watcher lasts: the watcher sees a stop within it.
  static constexpr std::chrono::milliseconds kWatchSlice{200};
  AssistantStats counters_;
  std::thread pump_;
  MonotonicClock::time_point last_recovery_{};
  std::uint64_t recoveries_ = 0;
};

}  // namespace llmassist::detail::assistant
