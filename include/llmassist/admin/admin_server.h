// AdminServer: the operators' and admins' HTTP server — the REST API of docs/rest-api.md, the web
// page (moderation queue, chats, handoff, audit log, statistics with charts) with live updates
// over server-sent events, and Prometheus metrics. Embeddable: llmassist-bot serves it in-process
// when its config has an `admin` section, and llmassist-admin runs it over the database of a
// running bot.
//
// Contract:
// - Decisions only write to the store; the bot's outbox delivers them (as with the operator CLI).
//   The API channel's chats are served by an Assistant like any other (see AdminServerParts::api).
// - Every route checks who is asking (a session cookie with a CSRF token for changes, or a Bearer
//   API token) and the account's role; every decision's audit event names the account.
// - Bad requests get a 4xx with a JSON error body and change nothing; secrets (passwords, tokens,
//   session ids) are never logged nor echoed.
// - The page shows users' text as text, never as markup.
//
// Thread-safety: start() and stop() from one thread; requests are served on the server's own
// threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmassist/account_store.h"
#include "llmassist/admin/api_transport.h"
#include "llmassist/assistant.h"
#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/memory_manager.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API AdminServerOptions {
  // "host:port" to listen on; port 0 picks a free one (see AdminServer::port()). Default
  // "127.0.0.1:8080": only this machine. Anything else exposes the page: put it behind HTTPS.
  std::string listen = "127.0.0.1:8080";
  // How long a signed-in browser stays signed in. Default 12 hours.
  std::chrono::seconds session_lifetime{std::chrono::hours(12)};
  // The page is reached over HTTPS (through a proxy): the session cookie is then
  // "__Host-llmassist_session" with the Secure flag (Path=/, no Domain), and only that name is
  // accepted back. Default: off ("llmassist_session", without Secure, for plain http on this
  // machine).
  bool secure_cookie = false;
  // The reverse proxies in front of the server: addresses ("127.0.0.1", "::1") or CIDR ranges
  // ("10.0.0.0/8"). A request from one of them is taken to come from the client its
  // X-Forwarded-For names (the last address there that is not itself a trusted proxy); from
  // anyone else the header is ignored. Only the sign-in throttle and the logs use the client's
  // address. Default: none.
  std::vector<std::string> trusted_proxies;
  // Request bodies larger than this are refused with 413. Default 256 KiB.
  std::size_t max_body_bytes = 256 * 1024;
  // Threads running request handlers (reads and writes of the store). Connections, event
  // streams and POST /v1/chat/handle waiting for the model hold none. Default 4.
  int threads = 4;
  // Event streams (an open page's live updates) at once; more are answered 503. Default 64.
  int max_event_streams = 64;
  // Connections open at once, in total and from one client address; more are closed as they
  // arrive. Defaults 1024 and 64.
  unsigned max_connections = 1024;
  unsigned max_connections_per_address = 64;
  // A connection silent this long (mid-request, or kept alive between requests) is closed.
  // Default 10 s.
  std::chrono::seconds connection_timeout{10};
  // Memory for one connection's request head and buffers; a head larger than about half of it
  // is refused (414 or 431). Default 32 KiB.
  std::size_t connection_memory_bytes = 32 * 1024;
  // The Host header values answered ("admin.example.org", "10.0.0.5:8080"); a request with
  // another Host gets 421 (a defence against DNS rebinding). "*" accepts any. Default (empty):
  // the listen address's host:port, and for a loopback address also localhost, 127.0.0.1 and
  // [::1] with that port; for a wildcard address (0.0.0.0, ::) any Host, with a warning.
  std::vector<std::string> allowed_hosts;
  // The deployment's configured policy, for GET /api/settings and the server's own Assistant
  // (a runtime override in the store wins). Default: auto.
  ModerationPolicy policy = ModerationPolicy::kAuto;
  // The configured system prompt, shown by GET /api/settings when no override is set.
  std::string system_prompt;
  // How long POST /v1/chat/handle waits for the answer (or the draft, in review policy); then
  // 504, and the reply goes on. Default 60 s.
  std::chrono::milliseconds handle_timeout{std::chrono::seconds(60)};
  // Failed sign-ins tolerated for one account from one client address before each further
  // attempt of that account from that address must wait, 1 s doubling up to 5 minutes. An
  // address that fails four times as often (whatever the names) waits likewise for every name.
  // The account stays open from every other address: nobody can lock a user out. Default 5.
  int sign_in_failures_allowed = 5;
  std::shared_ptr<Clock> clock;    // default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

struct LLMASSIST_API AdminServerParts {
  std::shared_ptr<MessageStore> store;          // required
  std::shared_ptr<ModerationQueue> moderation;  // required, over the same store
  std::shared_ptr<AccountStore> accounts;       // required
  // POST /v1/chat/handle asks through the API channel of an Assistant. `api`: the channel of
  // one running beside the server (llmassist-bot with an `admin` section serves it with its
  // own); the server runs none. Without it, `llm` and `memory`: the server runs an Assistant of
  // its own over them that serves the API channel only (instance "admin", started and stopped
  // with the server: llmassist-admin). With neither, that route answers 503.
  std::shared_ptr<ApiTransport> api;
  std::shared_ptr<LlmProvider> llm;
  std::shared_ptr<MemoryManager> memory;
  // The providers' counters, for /metrics and /health (when the server runs beside a chain).
  std::shared_ptr<FallbackChain> chain;
  // The bot's counters when the server runs inside it, for /metrics.
  std::function<AssistantStats()> assistant_stats;
};

class LLMASSIST_API AdminServer final {
 public:
  // Errors: kInvalidArgument for a missing part or a malformed listen address.
  [[nodiscard]] static Result<std::unique_ptr<AdminServer>> create(AdminServerParts parts,
                                                                   AdminServerOptions options = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving. kUnavailable when the address cannot be bound.
  Status start();
  // Closes event streams and stops serving; returns when no request is being served.
  void stop();

  // The port it listens on (after start()).
  [[nodiscard]] int port() const;
  // "http://127.0.0.1:8080".
  [[nodiscard]] std::string url() const;

 private:
  struct Impl;
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmassist
