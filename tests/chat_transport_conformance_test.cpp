// The ChatTransport conformance suite (llmassist/testing/chat_transport_conformance.h) against
// the console transport over a pair of pipes.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "llmassist/console/console_transport.h"
#include "llmassist/testing/chat_transport_conformance.h"

namespace llmassist {
namespace {

class ConsoleHarness final : public testing::ChatTransportHarness {
 public:
  ConsoleHarness() {
    REQUIRE(::pipe(in_) == 0);
    REQUIRE(::pipe(out_) == 0);
    ::fcntl(out_[0], F_SETFL, ::fcntl(out_[0], F_GETFL) | O_NONBLOCK);
    ConsoleTransportOptions o;
    o.input_fd = in_[0];
    o.output_fd = out_[1];
    o.chat_id = "conformance";
    o.user_name = "Ann";
    o.logger = null_logger();
    transport_ = make_console_transport(o);
  }
  ~ConsoleHarness() override {
    transport_.reset();
    for (int fd : {in_[0], in_[1], out_[0], out_[1]}) ::close(fd);
  }
  ChatTransport& transport() override { return *transport_; }
  std::string chat() const override { return "conformance"; }
  Status user_writes(const std::string& text) override {
    const std::string line = text + "\n";
    if (::write(in_[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return unavailable("writing to the console's input failed");
    }
    return Status();
  }
  std::string received() override {
    std::lock_guard lock(mu_);
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(out_[0], buffer, sizeof buffer)) > 0) {
      seen_.append(buffer, static_cast<std::size_t>(n));
    }
    return seen_;
  }

 private:
  int in_[2] = {-1, -1};
  int out_[2] = {-1, -1};
  std::unique_ptr<ChatTransport> transport_;
  std::mutex mu_;
  std::string seen_;
};

TEST_CASE("ChatTransport conformance: the console transport") {
  const testing::ChatTransportFactory factory =
      []() -> Result<std::unique_ptr<testing::ChatTransportHarness>> {
    return std::unique_ptr<testing::ChatTransportHarness>(new ConsoleHarness());
  };
  for (const std::string& name : testing::chat_transport_check_names()) {
    SUBCASE(name.c_str()) {
      const testing::CheckResult r = testing::run_chat_transport_check(name, factory);
      CHECK_MESSAGE(r.passed, name << ":\n" << r.message);
    }
  }
}

}  // namespace
}  // namespace llmassist
