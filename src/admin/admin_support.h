// Internal: the admin server's parts that need none of its routes — the sign-in throttle, the
// trusted proxies, the live events' hub, and the Prometheus text of /metrics.
//
// Thread-safety: SignInThrottle and EventHub are thread-safe; TrustedProxies is immutable once
// made; prometheus_text() is a pure function.
#pragma once

#include <fmt/format.h>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_server.h"
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
    const std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(
        std::chrono::seconds(1) * (1LL << over), std::chrono::seconds(300));
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
  [[nodiscard]] std::string client(const std::string& peer, std::string_view forwarded_for) const;

 private:
  struct Range {
    std::array<unsigned char, 16> bytes{};  // IPv4 in the first 4
    bool v6 = false;
    int prefix = 0;
  };
  std::vector<Range> ranges_;
};

// The live events, written to every open event stream as they are published. A stream holds
// no thread: a write queues bytes and wakes its connection. Thread-safe.
class EventHub {
 public:
  // Sends to every open stream; drops the streams whose client is gone.
  void publish(std::string_view event, const nlohmann::json& data) {
    const std::string text = fmt::format("event: {}\ndata: {}\n\n", event, data.dump());
    std::lock_guard lock(mu_);
    write_locked(text, std::chrono::steady_clock::time_point::max());
  }
  // Adds a stream, its first bytes `first()` (called under the hub's lock, so that no event
  // published meanwhile is missed or comes before them). False (nothing written) when `limit`
  // streams are open or the hub stopped.
  bool subscribe(std::shared_ptr<http::Stream> stream, std::size_t limit,
                 const std::function<std::string()>& first) {
    std::lock_guard lock(mu_);
    if (stopping_ || streams_.size() >= limit) return false;
    if (!stream->write(first())) return false;
    streams_.push_back({std::move(stream), std::chrono::steady_clock::now()});
    return true;
  }
  // A comment to every stream silent for `idle`: proxies keep it open, and a client that
  // left is found.
  void ping(std::chrono::milliseconds idle) {
    std::lock_guard lock(mu_);
    write_locked(": ping\n\n", std::chrono::steady_clock::now() - idle);
  }
  [[nodiscard]] std::size_t streams() {
    std::lock_guard lock(mu_);
    return streams_.size();
  }
  // Ends every stream; later subscriptions fail.
  void stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& s : streams_) s.stream->close();
    streams_.clear();
  }

 private:
  struct Open {
    std::shared_ptr<http::Stream> stream;
    std::chrono::steady_clock::time_point last_write;
  };
  // To the streams last written before `silent_since`.
  void write_locked(std::string_view text, std::chrono::steady_clock::time_point silent_since) {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = streams_.begin(); it != streams_.end();) {
      if (it->last_write >= silent_since) {
        ++it;
      } else if (it->stream->write(text)) {
        it->last_write = now;
        ++it;
      } else {
        it = streams_.erase(it);
      }
    }
  }

  std::mutex mu_;
  std::vector<Open> streams_;
  bool stopping_ = false;
};

// What /metrics reports.
struct MetricsInput {
  const Stats* stats = nullptr;  // of the last 24 hours; none when the store keeps no statistics
  const std::vector<ProviderStats>* providers = nullptr;  // when a chain is there
  std::optional<AssistantStats> assistant;                // when the server runs in the bot
  int event_streams = 0;
};

// The Prometheus text exposition format (version 0.0.4) of `in`.
[[nodiscard]] std::string prometheus_text(const MetricsInput& in);

}  // namespace llmassist::detail
