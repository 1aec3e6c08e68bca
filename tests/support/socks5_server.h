// A SOCKS5 proxy on 127.0.0.1 and an ephemeral port, for tests of an HTTP client's socks5:// and
// socks5h:// proxies: RFC 1928 (CONNECT only; IPv4, IPv6 and domain-name addresses, names
// resolved here with getaddrinfo) with the username/password method of RFC 1929 when
// credentials are set. Each connection runs on a thread of its own; after the reply, bytes are
// copied both ways until either side closes.
//
// Thread-safety: construct and stop() from the test's thread; the accessors from any thread.
#pragma once

#include <atomic>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace llmassist::testing {

class Socks5Server {
 public:
  // What a client asked for, as it asked.
  struct Connect {
    // 0x01 IPv4, 0x03 a domain name, 0x04 IPv6.
    int address_type = 0;
    // The dotted or colon-separated address, or the name as sent.
    std::string host;
    int port = 0;
  };

  // With a user name, only clients that authenticate with `user` and `password` are served;
  // without, only clients that offer "no authentication". Binds and listens; throws
  // std::runtime_error when it cannot.
  explicit Socks5Server(std::string user = "", std::string password = "");
  ~Socks5Server();
  Socks5Server(const Socks5Server&) = delete;
  Socks5Server& operator=(const Socks5Server&) = delete;

  // Shuts every connection down and joins every thread. Idempotent; the destructor calls it.
  void stop();

  [[nodiscard]] int port() const { return port_; }
  // Every CONNECT request received from an authenticated client, in order.
  [[nodiscard]] std::vector<Connect> connects() const;
  // Authentications refused (a wrong user name or password, or no acceptable method).
  [[nodiscard]] int refused() const { return refused_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  const std::string user_;
  const std::string password_;
  int listen_fd_ = -1;
  int port_ = -1;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> refused_{0};
  mutable std::mutex mu_;
  std::vector<int> fds_;            // guarded by mu_: every open socket, shut down by stop()
  std::list<std::thread> workers_;  // guarded by mu_
  std::vector<Connect> connects_;   // guarded by mu_
};

}  // namespace llmassist::testing
