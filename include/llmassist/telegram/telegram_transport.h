// TelegramTransport: the ChatTransport over the Telegram Bot API, receiving by long polling
// (getUpdates) or by webhook, and sending with the Bot API's limits kept.
//
// Receiving: each update is handed to the InboundHandler on the transport's inbound thread, in
// Telegram's order. With polling, an update is confirmed (the getUpdates offset moves past it)
// only once the handler returned OK for it; updates that cannot be parsed are logged and
// confirmed at once. A handler failure stops the batch there: after a backoff the same update is
// delivered again. With a webhook the transport answers Telegram's request only once the
// handler has returned for its update: 200 when it took it (stored: a crash after that loses
// nothing), 503 when it refused it, so that Telegram sends it again later — to this process or,
// behind a load balancer, to another. Updates that arrive together go to the handler together.
//
// Sending: every call is asynchronous and goes through one queue per chat, so the messages,
// edits and drafts for one chat go out in the order they were asked for, at most one per
// `per_chat_interval`, and all chats together at most `global_per_second` (by default only
// after Telegram's flood control has answered a 429: see TelegramPacingOptions). A 429 is
// waited out (Telegram's retry_after, on the Scheduler, never by sleeping), 5xx and network
// errors are retried with backoff; the Status handed to `done` is final.
//
// Files: send() sends the text, then each OutboundMessage::attachments entry with sendDocument
// (its caption cut to 1024 UTF-16 units, ending in "…"; the buttons on the last message sent,
// the reply on the first). Every file is checked before anything of the message goes out: one
// that cannot be read, is empty or is over 50 MB fails the whole send with kInvalidArgument.
// A file's first upload leaves its file_id in memory (per transport, the last thousand files),
// and later sends of the same unchanged file (same path, size, modification time, name and
// type) send that file_id instead of the bytes; a file_id Telegram refuses is forgotten and the
// file uploaded again, once.
//
// Secrets: the bot token appears only in request URLs. Logs and Status messages name requests
// as "https://api.telegram.org/bot<redacted>/sendMessage".
//
// Thread-safety: as ChatTransport; every method may be called from any thread. Completion
// callbacks run on the HttpClient's I/O thread or the Scheduler's thread (a send refused before
// anything was tried, after stop(), completes on the caller's thread); the InboundHandler runs
// on the transport's own inbound thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmassist/chat_transport.h"
#include "llmassist/export.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/scheduler.h"
#include "llmassist/status.h"

namespace llmassist {

enum class TelegramMode : std::uint8_t {
  kPolling,  // getUpdates long polling: works behind NAT, no public address needed
  kWebhook,  // Telegram POSTs each update to a local HTTP server (behind a TLS proxy)
};

struct LLMASSIST_API TelegramPollingOptions {
  // How long one getUpdates waits on Telegram's side for an update. Default: 25 s.
  std::chrono::seconds timeout{25};
  // The update kinds asked for; the transport turns exactly these into events.
  std::vector<std::string> allowed_updates = {"message", "edited_message", "callback_query",
                                              "my_chat_member"};
  // Updates per getUpdates, 1..100. Default: 100.
  int limit = 100;
};

// The shortest webhook secret accepted (without TelegramWebhookOptions::allow_no_secret).
inline constexpr std::size_t kMinWebhookSecret = 16;

struct LLMASSIST_API TelegramWebhookOptions {
  // The local address the webhook server listens on; must not be empty (an empty host would
  // mean every address). Default: 127.0.0.1 (a TLS-terminating reverse proxy in front forwards
  // to it).
  std::string listen_host = "127.0.0.1";
  // The local port. Default: 8081.
  int port = 8081;
  // The path Telegram POSTs to. Default: "/telegram/webhook".
  std::string path = "/telegram/webhook";
  // The https URL Telegram is told to call (setWebhook at start()). Empty: the webhook is
  // managed elsewhere, and start() does not call setWebhook.
  std::string public_url;
  // Telegram sends it in X-Telegram-Bot-Api-Secret-Token with every update; a request without
  // it is refused (401, a wrong one 403). 16–256 characters of A–Z, a–z, 0–9, '_' and '-';
  // anything shorter (or none) is refused by make_telegram_transport() unless allow_no_secret.
  std::string secret_token;
  // Accept a webhook with a short secret or none (then every request is taken, and a warning
  // is logged at start()): only for a local test setup. Default: false.
  bool allow_no_secret = false;
  // A larger request body is refused with 413. Default: 1 MiB.
  std::size_t max_body_bytes = std::size_t{1} << 20;
  // Updates received but not yet taken by the handler (each holds its request open). Beyond
  // this the webhook answers 503 and Telegram delivers the update again later. Default: 10 000.
  std::size_t max_queued_updates = 10000;
  // Connections open at once, in total and from one address (Telegram opens up to
  // max_connections, at most 100, from its servers); more are closed as they arrive. Defaults
  // 1024 and 128.
  unsigned max_connections = 1024;
  unsigned max_connections_per_address = 128;
  // A connection silent this long is closed (Telegram keeps its connections open between
  // updates). Default 30 s.
  std::chrono::seconds connection_timeout{30};
};

struct LLMASSIST_API TelegramPacingOptions {
  // The least time between two messages (sends, edits, drafts) to one chat; Telegram allows
  // about one per second. Zero: no per-chat pacing. Default: 1 s.
  std::chrono::milliseconds per_chat_interval{1000};
  // Messages per second over all chats (Telegram allows about 30). Zero: no global limit.
  // Default: 30.
  int global_per_second = 30;
  // Adaptive (the default): the global limit applies only once Telegram has answered a 429
  // (flood control), from then until `adaptive_cooldown` after the last 429; before that, and
  // after it, messages to different chats go out as fast as they are asked for. So a burst of
  // answers to many chats goes out at once, as long as Telegram accepts it, and a bot that
  // meets Telegram's limit slows down to it instead of collecting ever longer waits. False:
  // the global limit always applies.
  bool adaptive = true;
  // How long the global limit holds after the last 429, when adaptive. Default: 60 s.
  std::chrono::milliseconds adaptive_cooldown{60000};
};

struct LLMASSIST_API TelegramRetryOptions {
  // Attempts of one Bot API call on network errors, timeouts, 5xx and 429, the first included.
  // Default: 5.
  int max_attempts = 5;
  // The first backoff after a network error or 5xx; doubled after each further failure, up to
  // max_backoff. The same schedule spaces getUpdates after failures and redeliveries after a
  // handler failure. Default: 500 ms, at most 30 s.
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // A 429 asking to wait longer than this is not waited out: the call fails with
  // kResourceExhausted and its retry_after(). Default: 60 s.
  std::chrono::milliseconds max_retry_after{60000};
};

struct LLMASSIST_API TelegramTransportOptions {
  // The bot token from @BotFather ("123456:AA..."). Required. A secret: never logged, never in
  // a Status.
  std::string token;
  // The Bot API root; a local Bot API server or a test mock may stand in. Default: Telegram's.
  std::string api_url = "https://api.telegram.org";
  TelegramMode mode = TelegramMode::kPolling;
  TelegramPollingOptions polling;
  TelegramWebhookOptions webhook;
  TelegramPacingOptions pacing;
  TelegramRetryOptions retry;
  // Timeouts of every Bot API call except getUpdates (whose wait adds polling.timeout). An
  // upload adds a second for each 128 KiB of its file (the time to send it at 1 Mbit/s).
  // Default: connect 10 s, response 30 s.
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  // Connections to the Bot API open at once (the long poll holds one); further calls wait for a
  // free one. A few are plenty within Telegram's rate limits, and each new https connection
  // costs a TLS handshake and its memory. For the transport's own client only (not `http`).
  // Default: 16.
  int max_connections = 16;
  // The proxy of the transport's own client (CurlHttpClientOptions::proxy: a URL such as
  // "socks5h://user:password@host:1080", or "direct"); empty: the environment's. Not for `http`.
  // Default: empty.
  std::string proxy;
  // CA certificates (PEM) the transport's own client trusts instead of the system's (a local Bot
  // API server behind TLS, a TLS-intercepting proxy). Not for `http`. Default: empty.
  std::string ca_file;
  // Outbound HTTP. Default: a libcurl client of the transport's own (make_curl_http_client).
  std::shared_ptr<HttpClient> http;
  // Timers for pacing, retries and backoff. Default: a scheduler thread of the transport's own.
  std::shared_ptr<Scheduler> scheduler;
  // Default: stderr_logger().
  std::shared_ptr<Logger> logger;
};

// Creates a transport. Nothing is sent until start() or a send call. kInvalidArgument for a
// missing or malformed token, a bad api_url, a webhook secret of the wrong shape, or limits out
// of range; kInternal when the default HTTP client cannot be made.
//
// start() asks getMe first (kUnauthenticated when the token is refused, kUnavailable when
// Telegram cannot be reached), then begins polling, or listens and calls setWebhook. It blocks
// for those calls: do not call it from a callback of the HttpClient it uses.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<ChatTransport>> make_telegram_transport(
    TelegramTransportOptions options);

// What getMe says about the bot.
struct LLMASSIST_API TelegramBotInfo {
  std::int64_t id = 0;
  std::string username;  // without "@"
  std::string first_name;
  bool can_join_groups = false;
  bool can_read_all_group_messages = false;  // privacy mode off
  bool supports_inline_queries = false;
};

// Calls getMe with the options' token and API root and waits for the answer: the token check of
// a `doctor` command. kUnauthenticated ("the bot token was refused") on 401, kUnavailable or
// kDeadlineExceeded when Telegram cannot be reached. Blocks: not for an HttpClient callback.
[[nodiscard]] LLMASSIST_API Result<TelegramBotInfo> telegram_get_me(
    const TelegramTransportOptions& options);

}  // namespace llmassist
