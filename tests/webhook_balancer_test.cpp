// The tests' webhook load balancer (support/webhook_balancer.h) against mock backends over
// loopback: round robin, failing over past a backend that refuses and one that is down, again
// and again until one takes the update, one chat's updates one at a time and chats in parallel.
#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/free_port.h"
#include "support/mock_http_server.h"
#include "support/webhook_balancer.h"

namespace llmassist::testing {
namespace {

constexpr const char* kSecret = "a-secret-of-the-tests-0123";

// A backend that answers 503 to its first `refuse_first` requests and 200 to the rest, and
// records what it took: each chat's updates in order, the secrets, and how many requests it
// was handling at once, in all and per chat. Its first requests wait (up to 5 s) until
// `hold_until` are being handled at once.
struct Backend {
  explicit Backend(int refuse = 0, int hold = 0) : refuse_first(refuse), hold_until(hold) {
    server.http().Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      const auto update = nlohmann::json::parse(req.body);
      const std::int64_t chat = update.at("chat");
      {
        std::lock_guard lock(mu);
        secrets.push_back(req.get_header_value("X-Telegram-Bot-Api-Secret-Token"));
        max_in_flight = std::max(max_in_flight, ++in_flight);
        max_in_flight_per_chat = std::max(max_in_flight_per_chat, ++in_flight_per_chat[chat]);
      }
      server.notify();
      server.wait_until(
          [&] {
            std::lock_guard lock(mu);
            return held || in_flight >= hold_until;
          },
          std::chrono::seconds(5));
      std::lock_guard lock(mu);
      held = true;
      --in_flight;
      --in_flight_per_chat[chat];
      if (refused < refuse_first) {
        ++refused;
        res.status = 503;
        return;
      }
      taken[chat].push_back(update.at("n"));
      res.status = 200;
    });
    server.start();
  }
  std::string url() const { return server.url("/hook"); }

  const int refuse_first;
  const int hold_until;
  std::mutex mu;
  int refused = 0;
  bool held = false;
  int in_flight = 0;
  int max_in_flight = 0;
  std::map<std::int64_t, int> in_flight_per_chat;
  int max_in_flight_per_chat = 0;
  std::map<std::int64_t, std::vector<int>> taken;
  std::vector<std::string> secrets;
  MockHttpServer server;  // last: stopped (its handlers joined) before the state above goes
};

std::string update(std::int64_t chat, int n) {
  return nlohmann::json({{"chat", chat}, {"n", n}}).dump();
}

TEST_CASE(
    "webhook balancer: round robin, past a refusing and a down backend, each chat in order, "
    "chats in parallel") {
  Backend refusing(1 << 30);     // answers 503 to everything
  const int down = free_port();  // nothing listens there
  Backend taking(0, 3);          // its first three requests wait for each other
  WebhookBalancer balancer(
      {.backends = {refusing.url(), "http://127.0.0.1:" + std::to_string(down) + "/hook",
                    taking.url()},
       .secret = kSecret,
       .threads = 3});
  constexpr int kChats = 3;
  constexpr int kPerChat = 20;
  std::vector<std::pair<std::int64_t, std::string>> updates;
  for (int n = 0; n < kPerChat; ++n) {
    for (int chat = 0; chat < kChats; ++chat) updates.emplace_back(chat, update(chat, n));
  }
  balancer.deliver(std::move(updates));
  REQUIRE(balancer.wait_idle(std::chrono::seconds(30)));

  CHECK(balancer.delivered() == kChats * kPerChat);
  CHECK(balancer.delivered_by_backend() == std::vector<std::size_t>{0, 0, kChats * kPerChat});
  // The updates start at each backend in turn: a third at the refusing one (two failovers), a
  // third at the down one (one), a third at the taking one (none).
  CHECK(balancer.failovers() == kPerChat * (2 + 1 + 0));
  std::lock_guard lock(taking.mu);
  for (int chat = 0; chat < kChats; ++chat) {
    std::vector<int> in_order(kPerChat);
    for (int n = 0; n < kPerChat; ++n) in_order[n] = n;
    CHECK(taking.taken[chat] == in_order);
  }
  CHECK(taking.max_in_flight_per_chat == 1);
  CHECK(taking.max_in_flight == kChats);  // the held three: one of each chat, at once
  for (const auto& s : taking.secrets) CHECK(s == kSecret);
}

TEST_CASE("webhook balancer: a lone backend refusing at first gets the update once it takes it") {
  Backend backend(5);
  WebhookBalancer balancer({.backends = {backend.url()}, .secret = kSecret, .threads = 1});
  balancer.deliver(7, update(7, 0));
  REQUIRE(balancer.wait_idle(std::chrono::seconds(30)));
  CHECK(balancer.delivered() == 1);
  CHECK(balancer.failovers() == 5);
  std::lock_guard lock(backend.mu);
  CHECK(backend.taken[7] == std::vector<int>{0});
  CHECK(backend.secrets.size() == 6);
}

}  // namespace
}  // namespace llmassist::testing
