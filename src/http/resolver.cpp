#include "http/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>

#include "http/http_text.h"

namespace llmassist::detail {
namespace {

Resolved resolve(const std::string& host, int port) {
  Resolved out;
  out.key = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) {
    out.error = rc == EAI_SYSTEM ? errno_text(errno) : ::gai_strerror(rc);
    return out;
  }
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address address;
    std::memcpy(&address.storage, a->ai_addr, a->ai_addrlen);
    address.length = a->ai_addrlen;
    out.addresses.push_back(address);
  }
  ::freeaddrinfo(list);
  if (out.addresses.empty()) out.error = "no addresses";
  return out;
}

}  // namespace

std::optional<Address> numeric_address(const std::string& host, int port) {
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    a.length = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

Resolver::Resolver() : ready_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (ready_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Resolver::~Resolver() { ::close(ready_fd_); }

void Resolver::lookup(const std::shared_ptr<Resolver>& self, std::string host, int port) {
  bool start = false;
  {
    std::lock_guard lock(self->mu_);
    self->jobs_.emplace_back(std::move(host), port);
    start = !self->started_;
    self->started_ = true;
  }
  self->wake_.notify_one();
  if (start) std::thread([self] { self->run(); }).detach();
}

std::vector<Resolved> Resolver::take_answers() {
  std::uint64_t count = 0;
  [[maybe_unused]] const ssize_t r = ::read(ready_fd_, &count, sizeof count);
  std::lock_guard lock(mu_);
  return std::exchange(answers_, {});
}

void Resolver::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_one();
}

void Resolver::run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    auto [host, port] = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Resolved answer = resolve(host, port);
    lock.lock();
    if (stopping_) return;
    answers_.push_back(std::move(answer));
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(ready_fd_, &one, sizeof one);
  }
}

}  // namespace llmassist::detail
