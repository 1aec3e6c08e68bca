// Internal: the admin server's parts that need none of its routes — the sign-in throttle, the
// trusted proxies, the live events' hub, and the Prometheus text of /metrics.
//
// Thread-safety: SignInThrottle and EventHub are thread-safe; TrustedProxies is immutable once
// made; prometheus_text() is a pure function.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmassist/assistant.h"
#include "llmassist/clock.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist::detail {

// Failed sign-ins by (account, client address) and by client address alone: after `allowed`
// failures of one account from one address, each further attempt of it from there waits 1 s,
// doubling up to 5 minutes from the last failure; an address that failed 4 × `allowed` times,
// whatever the names, waits likewise for every name. Never by account alone: an attacker
// elsewhere cannot lock the account's owner out. Forgotten after an hour of quiet.
class SignInThrottle {
 public:
  SignInThrottle(int allowed, std::shared_ptr<Clock> clock)
      : allowed_(allowed), clock_(std::move(clock)) {}

  // How long the caller must still wait; zero when it may try.
  std::chrono::milliseconds wait(const std::string& name, const std::string& address) {
    std::lock_guard lock(mu_);
    return std::max(wait_locked(pair_key(name, address), allowed_),
                    wait_locked("a:" + address, 4 * allowed_));
  }
  void failed(const std::string& name, const std::string& address) {
    std::lock_guard lock(mu_);
    const Timestamp now = clock_->now();
    if (entries_.size() > 10000) forget_old(now);
    for (const std::string& key : {pair_key(name, address), "a:" + address}) {
      Entry& e = entries_[key];
      ++e.failures;
      e.last = now;
    }
  }
  void succeeded(const std::string& name, const std::string& address) {
    std::lock_guard lock(mu_);
    entries_.erase(pair_key(name, address));
  }

 private:
  struct Entry {
    int failures = 0;
    Timestamp last{};
  };
  // Names and addresses hold no newline (a name is printable; an address is an IP address).
  static std::string pair_key(const std::string& name, const std::string& address) {
    return "p:" + address + "\n" + name;
  }
  std::chrono::milliseconds wait_locked(const std::string& key, int allowed) {
    const auto it = entries_.find(key);
    if (it == entries_.end() || it->second.failures < allowed) return std::chrono::milliseconds(0);
    const int over = std::min(it->second.failures - allowed, 20);
    const std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(std::chrono::seconds(1) * (1LL << over), std::chrono::seconds(300));
    const auto passed =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_->now() - it->second.last);
    return passed >= delay ? std::chrono::milliseconds(0) : delay - passed;
  }
  void forget_old(Timestamp now) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = now - it->second.last > std::chrono::hours(1) ? entries_.erase(it) : std::next(it);
    }
  }

  const int allowed_;
  std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
};

// The reverse proxies whose X-Forwarded-For is believed: addresses and CIDR ranges, IPv4 and
// IPv6 (an IPv4-mapped IPv6 address counts as its IPv4 address).
class TrustedProxies {
 public:
  // kInvalidArgument naming the entry that is neither an address nor a range.
  [[nodiscard]] static Result<TrustedProxies> parse(const std::vector<std::string>& entries);
  [[nodiscard]] bool contains(std::string_view address) const;
  // The client's address: `peer` (the socket's), unless `peer` is a trusted proxy and
  // `forwarded_for` (the X-Forwarded-For header) names one; then the last address there that is
  // not itself a trusted proxy (what the proxies appended, not what the client wrote first).
  [[nodiscard]] std::string client(const std::string& peer,
                                   std::string_view forwarded_for) const;

 private:
  struct Range {
    std::array<unsigned char, 16> bytes{};  // IPv4 in the first 4
    bool v6 = false;
    int prefix = 0;
  };
  std::vector<Range> ranges_;
};

// The live events: a numbered log of the last events, which every open stream reads from.
class EventHub {
 public:
  void publish(std::string_view event, const nlohmann::json& data) {
    {
      std::lock_guard lock(mu_);
      ++seq_;
      log_.emplace_back(seq_, fmt::format("event: {}\ndata: {}\n\n", event, data.dump()));
      if (log_.size() > 64) log_.pop_front();
    }
    cv_.notify_all();
  }
  // Waits up to `timeout` for events after `seen`; appends them to `out`. False when stopping.
  bool next(std::uint64_t& seen, std::chrono::milliseconds timeout, std::string& out) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return stopping_ || seq_ > seen; });
    if (stopping_) return false;
    for (const auto& [n, text] : log_) {
      if (n > seen) out += text;
    }
    seen = seq_;
    return true;
  }
  [[nodiscard]] std::uint64_t last() {
    std::lock_guard lock(mu_);
    return seq_;
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t seq_ = 0;
  std::deque<std::pair<std::uint64_t, std::string>> log_;
  bool stopping_ = false;
};

// What /metrics reports.
struct MetricsInput {
  const Stats* stats = nullptr;                           // of the last 24 hours; required
  const std::vector<ProviderStats>* providers = nullptr;  // when a chain is there
  std::optional<AssistantStats> assistant;                // when the server runs in the bot
  int event_streams = 0;
};

// The Prometheus text exposition format (version 0.0.4) of `in`.
[[nodiscard]] std::string prometheus_text(const MetricsInput& in);

}  // namespace llmassist::detail
