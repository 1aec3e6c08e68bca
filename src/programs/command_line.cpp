#include "programs/command_line.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>
#include <ostream>

#include "programs/operator_console.h"

namespace llmassist::detail {

std::optional<std::string> parse_args(const std::vector<std::string>& args, const Spec& spec,
                                      Parsed& out) {
  bool options_done = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!options_done && a == "--") {
      options_done = true;
    } else if (!options_done && a.size() > 2 && a.starts_with("--")) {
      if (spec.values.count(a)) {
        if (i + 1 >= args.size()) return fmt::format("{} needs a value", a);
        out.values[a] = args[++i];
      } else if (spec.flags.count(a) || a == "--json" || a == "--help") {
        out.flags.insert(a);
      } else {
        return fmt::format("{} takes no option {}", args[0], line(a));
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_id(std::string_view text) {
  std::int64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || v <= 0) return std::nullopt;
  return v;
}

std::string utc(Timestamp t, bool with_seconds) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  const std::size_t n =
      std::strftime(buf, sizeof buf, with_seconds ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M", &tm);
  return std::string(buf, n);
}

std::string line(std::string_view text) { return escape_for_terminal(text, false); }

void print_json(std::ostream& out, const nlohmann::json& value) {
  out << value.dump(2, ' ', true, nlohmann::json::error_handler_t::replace) << "\n";
}

int usage(std::ostream& err, std::string_view message) {
  err << "usage error: " << message << "\n";
  return kExitUsage;
}

int fail(std::ostream& err, const Status& status) {
  err << "error: " << line(status.to_string()) << "\n";
  return kExitFailure;
}

}  // namespace llmassist::detail
