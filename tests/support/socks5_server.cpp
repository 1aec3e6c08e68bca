#include "support/socks5_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>

namespace llmassist::testing {
namespace {

// Reads exactly `n` bytes (each wait bounded by 5 s); false on end of stream, error or timeout.
bool read_exactly(int fd, void* out, std::size_t n) {
  auto* p = static_cast<std::uint8_t*>(out);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 5000) <= 0) return false;
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL);
    if (put <= 0) return false;
    p += put;
    n -= static_cast<std::size_t>(put);
  }
  return true;
}

// Connects to `host`:`port`, resolving a name; -1 when it cannot.
int connect_to(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

// Copies bytes both ways until either side closes.
void relay(int a, int b) {
  std::array<char, 16384> buffer{};
  while (true) {
    std::array<pollfd, 2> pfds{{{a, POLLIN, 0}, {b, POLLIN, 0}}};
    if (::poll(pfds.data(), 2, 10000) <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (pfds[static_cast<std::size_t>(i)].revents == 0) continue;
      const int from = i == 0 ? a : b;
      const int to = i == 0 ? b : a;
      const ssize_t got = ::recv(from, buffer.data(), buffer.size(), 0);
      if (got <= 0 || !write_all(to, buffer.data(), static_cast<std::size_t>(got))) return;
    }
  }
}

}  // namespace

Socks5Server::Socks5Server(std::string user, std::string password)
    : user_(std::move(user)), password_(std::move(password)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::runtime_error("socks5 test server: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

Socks5Server::~Socks5Server() { stop(); }

void Socks5Server::stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::list<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& w : workers) w.join();
}

std::vector<Socks5Server::Connect> Socks5Server::connects() const {
  std::lock_guard lock(mu_);
  return connects_;
}

void Socks5Server::accept_loop() {
  while (!stopping_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void Socks5Server::serve(int fd) {
  int upstream = -1;
  auto forget = [&](int s) {
    if (s < 0) return;
    std::lock_guard lock(mu_);
    fds_.erase(std::remove(fds_.begin(), fds_.end(), s), fds_.end());
    ::close(s);
  };
  [&] {
    // Greeting: VER NMETHODS METHODS...
    std::uint8_t head[2];
    if (!read_exactly(fd, head, 2) || head[0] != 5) return;
    std::vector<std::uint8_t> methods(head[1]);
    if (!read_exactly(fd, methods.data(), methods.size())) return;
    const std::uint8_t wanted = user_.empty() ? 0x00 : 0x02;
    if (std::find(methods.begin(), methods.end(), wanted) == methods.end()) {
      ++refused_;
      const std::uint8_t none[2] = {5, 0xff};
      write_all(fd, none, 2);
      return;
    }
    const std::uint8_t chosen[2] = {5, wanted};
    if (!write_all(fd, chosen, 2)) return;
    if (wanted == 0x02) {
      // RFC 1929: VER ULEN UNAME PLEN PASSWD.
      std::uint8_t ver_len[2];
      if (!read_exactly(fd, ver_len, 2) || ver_len[0] != 1) return;
      std::string user(ver_len[1], '\0');
      std::uint8_t plen = 0;
      if (!read_exactly(fd, user.data(), user.size()) || !read_exactly(fd, &plen, 1)) return;
      std::string password(plen, '\0');
      if (!read_exactly(fd, password.data(), password.size())) return;
      const bool ok = user == user_ && password == password_;
      // Counted before the answer: the client may see the refusal (and its test read the
      // count) as soon as it is written.
      if (!ok) ++refused_;
      const std::uint8_t status[2] = {1, static_cast<std::uint8_t>(ok ? 0 : 1)};
      write_all(fd, status, 2);
      if (!ok) return;
    }
    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
    std::uint8_t req[4];
    if (!read_exactly(fd, req, 4) || req[0] != 5 || req[1] != 1) return;
    Connect c;
    c.address_type = req[3];
    if (req[3] == 0x01 || req[3] == 0x04) {
      const std::size_t n = req[3] == 0x01 ? 4 : 16;
      std::array<std::uint8_t, 16> raw{};
      if (!read_exactly(fd, raw.data(), n)) return;
      char text[INET6_ADDRSTRLEN] = {};
      ::inet_ntop(req[3] == 0x01 ? AF_INET : AF_INET6, raw.data(), text, sizeof text);
      c.host = text;
    } else if (req[3] == 0x03) {
      std::uint8_t len = 0;
      if (!read_exactly(fd, &len, 1)) return;
      c.host.assign(len, '\0');
      if (!read_exactly(fd, c.host.data(), c.host.size())) return;
    } else {
      return;
    }
    std::uint8_t port[2];
    if (!read_exactly(fd, port, 2)) return;
    c.port = port[0] * 256 + port[1];
    {
      std::lock_guard lock(mu_);
      connects_.push_back(c);
    }
    upstream = connect_to(c.host, c.port);
    // Reply: VER REP RSV ATYP BND.ADDR BND.PORT (the bound address is not used by clients).
    const std::uint8_t reply[10] = {
        5, static_cast<std::uint8_t>(upstream >= 0 ? 0 : 5), 0, 1, 0, 0, 0, 0, 0, 0};
    if (!write_all(fd, reply, sizeof reply) || upstream < 0) return;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      fds_.push_back(upstream);
    }
    relay(fd, upstream);
  }();
  forget(upstream);
  forget(fd);
}

}  // namespace llmassist::testing
