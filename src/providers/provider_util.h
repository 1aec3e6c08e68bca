// Internal: what the HTTP providers (OpenAI-compatible, Ollama) share — the mapping of HTTP
// failures to Status, Retry-After parsing, line splitting for streamed bodies, and the filter
// that keeps a model's <think>…</think> reasoning away from the answer.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "llmassist/http_client.h"
#include "llmassist/llm_provider.h"
#include "llmassist/status.h"

namespace llmassist::detail {

// "user" / "assistant" / "system" / "tool" for a model; an operator's words are the assistant's.
std::string_view model_role(Role role);

// The Retry-After of a response: the "retry-after-ms" header (OpenAI), else "retry-after" in
// seconds or as an HTTP date. Empty when absent or unreadable.
std::optional<std::chrono::milliseconds> retry_after(const HttpResponse& response);

// The Status for a failed HTTP exchange with a model API: `provider` names it, `detail` is the
// server's own error message (already extracted from its JSON), `error_code` its machine code
// ("insufficient_quota", "context_length_exceeded"), when it gave one.
//   401 kUnauthenticated, 403 kPermissionDenied, 404 kNotFound, 408 kDeadlineExceeded,
//   409 kAborted, 429 kResourceExhausted (reason "insufficient_quota" when so), 5xx kUnavailable,
//   400/413/422 mentioning the context length kOutOfRange (reason "context_length_exceeded"),
//   other 4xx kInvalidArgument. 429 and 503 carry retry_after() when the server sent one.
Status http_failure(std::string_view provider, const HttpResponse& response,
                    std::string_view detail, std::string_view error_code);

// j[key] when it is a string, else "".
std::string string_or_empty(const nlohmann::json& j, const char* key);

// The server's message and machine code in an OpenAI-style error: {"error": {"message", "code",
// "type"}} (OpenRouter's metadata.raw appended), {"error": "text"}, or {"message": ...}.
std::pair<std::string, std::string> openai_error(const nlohmann::json& j);
// openai_error() of an error body; a body that is not JSON is quoted (clipped) as the message.
std::pair<std::string, std::string> openai_error_detail(std::string_view body);
// Ollama's {"error": "text"} of an error body; anything else is quoted (clipped) as the message.
std::pair<std::string, std::string> ollama_error_detail(std::string_view body);

// Keeps at most `max` bytes of a server's text for an error message, on a UTF-8 boundary.
std::string clip(std::string_view text, std::size_t max = 300);

// Splits a streamed body into lines as chunks arrive; "\r\n" and "\n" both end a line. Refuses
// (returns false from feed) a line longer than `max_line` bytes.
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line = 1 << 20) : max_line_(max_line) {}
  // Calls `on_line` for each complete line (without its end); stops and returns false when
  // on_line returns false or a line is too long.
  bool feed(std::string_view chunk, const std::function<bool(std::string_view)>& on_line);
  // What is left after the last line end (a final line without "\n").
  [[nodiscard]] const std::string& rest() const { return buffer_; }

 private:
  std::string buffer_;
  std::size_t max_line_;
};

// Separates <think>…</think> sections from streamed text, even when a tag is split across
// chunks. Text inside goes to reasoning, the rest to the answer. A text that opens with
// "</think>" alone (a server that swallowed the opening tag) has everything before it treated
// as reasoning too — only at the very start.
class ThinkFilter {
 public:
  // Feeds a piece; returns the part of it that belongs to the answer (possibly empty).
  std::string feed(std::string_view piece);
  // Ends the stream: returns held-back answer text (a partial tag that never completed).
  std::string finish();
  [[nodiscard]] const std::string& reasoning() const { return reasoning_; }

 private:
  std::string pending_;  // a possible partial tag at the end of the last piece
  std::string reasoning_;
  std::string head_;  // answer text held back until we know no "</think>" closes it
  bool inside_ = false;
  bool started_ = false;  // seen any non-space answer text, or a tag
};

// Strips <think>…</think> from a complete text; the reasoning goes to `reasoning` if given.
std::string strip_think(std::string_view text, std::string* reasoning = nullptr);

}  // namespace llmassist::detail
