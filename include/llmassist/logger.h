// Logger: where the library reports what happened. Injected through each component's options;
// there is no global logger.
//
// Contract for everyone who logs: messages never contain secrets (bot tokens, API keys,
// passwords); text from outside is quoted as data. A logger must not throw.
//
// Thread-safety: implementations must accept log() from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "llmassist/export.h"

namespace llmassist {

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarning, kError };

[[nodiscard]] LLMASSIST_API std::string_view to_string(LogLevel level) noexcept;

class LLMASSIST_API Logger {
 public:
  Logger() = default;
  virtual ~Logger() = default;
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // `component` names the part that logs ("store.sqlite", "llm.openai", "transport.telegram").
  virtual void log(LogLevel level, std::string_view component, std::string_view message) = 0;
};

// `text` with every control character written out, so that text from outside cannot end a log
// line, forge the next one or drive a terminal: LF, CR and TAB as \n, \r, \t; the other C0
// controls and DEL as \x1b and the like; C1 controls (U+0080..U+009F) as \u0085 and the like.
// Everything else, other UTF-8 included, is kept as it is.
[[nodiscard]] LLMASSIST_API std::string escape_log_text(std::string_view text);

// Writes "2026-11-21T05:24:28.123Z WARN  store.sqlite: message" lines to standard error,
// dropping those below `min_level`. One write per line, so lines from threads do not interleave.
// The component and the message are written through escape_log_text(): one call, one line.
[[nodiscard]] LLMASSIST_API std::shared_ptr<Logger> stderr_logger(
    LogLevel min_level = LogLevel::kInfo);

// Discards everything.
[[nodiscard]] LLMASSIST_API std::shared_ptr<Logger> null_logger();

}  // namespace llmassist
