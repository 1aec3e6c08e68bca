// Internal: what the library's command-line tools share — parsing a command's words into
// positional arguments and options, and printing results and errors the same way (the exit
// codes 0 done, 1 failed, 2 wrong command line).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist::detail {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// What a command accepts besides its positional words. --json and --help are always accepted.
struct Spec {
  std::set<std::string> values;  // options that take a value: "--limit"
  std::set<std::string> flags;   // options without one: "--force"
};

struct Parsed {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
};

// Parses `args[1..]` (args[0] names the command, in messages). Options may come anywhere; "--"
// ends them; a lone "-" is a positional word (standard input). On a usage error, returns the
// message to print.
[[nodiscard]] std::optional<std::string> parse_args(const std::vector<std::string>& args,
                                                    const Spec& spec, Parsed& out);

// A positive decimal number, or nothing.
[[nodiscard]] std::optional<std::int64_t> parse_id(std::string_view text);

// "2026-11-21 07:51:11" (or without seconds), UTC.
[[nodiscard]] std::string utc(Timestamp t, bool with_seconds = true);

// One line of text from outside, escaped for a terminal (escape_for_terminal, not multiline).
[[nodiscard]] std::string line(std::string_view text);

// ASCII only: every control and non-ASCII character is a \u escape, so JSON output is as safe on
// a terminal as it is exact for a parser. Invalid UTF-8 becomes U+FFFD instead of an exception.
void print_json(std::ostream& out, const nlohmann::json& value);

// Prints "usage error: <message>" to `err`; returns kExitUsage.
int usage(std::ostream& err, std::string_view message);

// Prints "error: <status>" (escaped) to `err`; returns kExitFailure.
int fail(std::ostream& err, const Status& status);

}  // namespace llmassist::detail
