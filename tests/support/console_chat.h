// A console chat driven by a test: the console transport's two pipes, the user's side of them.
// The test writes the user's lines and reads what the bot prints.
#pragma once

#include <doctest/doctest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "llmassist/console/console_transport.h"
#include "llmassist/logger.h"

namespace llmassist::testing {

class ConsoleChat {
 public:
  ConsoleChat() {
    REQUIRE(::pipe(to_bot_) == 0);
    REQUIRE(::pipe(from_bot_) == 0);
  }
  ~ConsoleChat() {
    for (int fd : {to_bot_[0], to_bot_[1], from_bot_[0], from_bot_[1]}) ::close(fd);
  }
  ConsoleChat(const ConsoleChat&) = delete;
  ConsoleChat& operator=(const ConsoleChat&) = delete;

  // The options of a console transport on this chat (the user "ann").
  ConsoleTransportOptions options() const {
    ConsoleTransportOptions o;
    o.input_fd = to_bot_[0];
    o.output_fd = from_bot_[1];
    o.user_name = "ann";
    o.logger = null_logger();
    return o;
  }

  void say(const std::string& line) {
    const std::string text = line + "\n";
    REQUIRE(::write(to_bot_[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }

  // Everything the bot printed until `needle` appears (or the timeout passes: then FAIL).
  std::string expect(const std::string& needle,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        FAIL("the bot did not print \"" << needle << "\"; it printed:\n" << seen_);
        return seen_;
      }
      pollfd p{from_bot_[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
        char buf[4096];
        const ssize_t n = ::read(from_bot_[0], buf, sizeof buf);
        if (n > 0) seen_.append(buf, static_cast<std::size_t>(n));
      }
    }
    std::string out = seen_.substr(0, seen_.find(needle) + needle.size());
    seen_.erase(0, out.size());
    return out;
  }

 private:
  int to_bot_[2];
  int from_bot_[2];
  std::string seen_;
};

}  // namespace llmassist::testing
