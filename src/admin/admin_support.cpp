#include "admin/admin_support.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/text.h"

namespace llmassist::detail {
namespace {

// An address as bytes (IPv4 in the first 4; a mapped IPv4 taken as IPv4); false when it is none.
bool address_bytes(std::string_view text, std::array<unsigned char, 16>& bytes, bool& v6) {
  const std::string s(text);
  bytes.fill(0);
  if (inet_pton(AF_INET, s.c_str(), bytes.data()) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), bytes.data()) != 1) return false;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes.data(), kMapped, 12) == 0) {
    std::memmove(bytes.data(), bytes.data() + 12, 4);
    std::fill(bytes.begin() + 4, bytes.end(), 0);
    v6 = false;
    return true;
  }
  v6 = true;
  return true;
}

// A Prometheus label value: backslash, quote and newline escaped.
std::string label(std::string_view value) {
  std::string out;
  for (char ch : value) {
    if (ch == '\\' || ch == '"') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

}  // namespace

Result<TrustedProxies> TrustedProxies::parse(const std::vector<std::string>& entries) {
  TrustedProxies out;
  for (const std::string& entry : entries) {
    const auto refused = [&] {
      return invalid_argument(fmt::format(
          "admin.trusted_proxies: \"{}\" is neither an IP address nor a range like 10.0.0.0/8",
          entry));
    };
    const std::size_t slash = entry.find('/');
    Range r;
    if (!address_bytes(std::string_view(entry).substr(0, slash), r.bytes, r.v6)) return refused();
    const int bits = r.v6 ? 128 : 32;
    r.prefix = bits;
    if (slash != std::string::npos) {
      const char* begin = entry.data() + slash + 1;
      const char* end = entry.data() + entry.size();
      const auto [p, ec] = std::from_chars(begin, end, r.prefix);
      if (ec != std::errc() || p != end || begin == end || r.prefix < 0 || r.prefix > bits) {
        return refused();
      }
    }
    out.ranges_.push_back(r);
  }
  return out;
}

bool TrustedProxies::contains(std::string_view address) const {
  std::array<unsigned char, 16> bytes{};
  bool v6 = false;
  if (ranges_.empty() || !address_bytes(address, bytes, v6)) return false;
  for (const Range& r : ranges_) {
    if (r.v6 != v6) continue;
    const int whole = r.prefix / 8;
    const int rest = r.prefix % 8;
    if (std::memcmp(bytes.data(), r.bytes.data(), static_cast<std::size_t>(whole)) != 0) continue;
    if (rest != 0) {
      const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
      if ((bytes[whole] & mask) != (r.bytes[whole] & mask)) continue;
    }
    return true;
  }
  return false;
}

std::string TrustedProxies::client(const std::string& peer, std::string_view forwarded_for) const {
  if (forwarded_for.empty() || !contains(peer)) return peer;
  std::string client = peer;
  while (!forwarded_for.empty()) {
    const std::size_t comma = forwarded_for.rfind(',');
    const std::string_view hop = detail::trim(
        comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for =
        comma == std::string_view::npos ? std::string_view() : forwarded_for.substr(0, comma);
    std::array<unsigned char, 16> bytes{};
    bool v6 = false;
    if (!address_bytes(hop, bytes, v6)) break;  // garbage: the last good hop stands
    client = std::string(hop);
    if (!contains(hop)) break;
  }
  return client;
}

std::string prometheus_text(const MetricsInput& in) {
  std::string out;
  const auto metric = [&out](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  if (in.stats) {
    const Stats& s = *in.stats;
    metric("llmassist_replies", "gauge", "Replies created in the last 24 hours, by status.");
    for (std::size_t i = 0; i < s.replies_by_status.size(); ++i) {
      out += fmt::format("llmassist_replies{{status=\"{}\"}} {}\n",
                         to_string(static_cast<ReplyStatus>(i)), s.replies_by_status[i]);
    }
    metric("llmassist_decisions", "gauge", "Operators' decisions in the last 24 hours.");
    out += fmt::format("llmassist_decisions{{decision=\"approve\"}} {}\n", s.approved);
    out += fmt::format("llmassist_decisions{{decision=\"edit\"}} {}\n", s.edited);
    out += fmt::format("llmassist_decisions{{decision=\"reject\"}} {}\n", s.rejected);
    const auto summary = [&](std::string_view name, std::string_view help,
                             const LatencySummary& l) {
      metric(name, "summary", help);
      const std::pair<const char*, std::optional<double>> qs[] = {
          {"0.5", l.p50_ms}, {"0.95", l.p95_ms}, {"0.99", l.p99_ms}};
      for (const auto& [quantile, value] : qs) {
        if (value) out += fmt::format("{}{{quantile=\"{}\"}} {}\n", name, quantile, *value / 1000);
      }
      out += fmt::format("{}_count {}\n", name, l.count);
    };
    summary("llmassist_response_seconds",
            "Question stored to answer sent, answers of the last 24 hours.", s.response_time);
    summary("llmassist_moderation_wait_seconds",
            "Draft stored to an operator's decision, the last 24 hours.", s.moderation_wait);
  }
  if (in.providers) {
    const auto& providers = *in.providers;
    metric("llmassist_provider_attempts_total", "counter", "Requests sent to each provider.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_attempts_total{{provider=\"{}\"}} {}\n", label(p.name),
                         p.attempts);
    }
    metric("llmassist_provider_successes_total", "counter", "Answers from each provider.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_successes_total{{provider=\"{}\"}} {}\n",
                         label(p.name), p.successes);
    }
    metric("llmassist_provider_failures_total", "counter", "Failures of each provider, by class.");
    for (const auto& p : providers) {
      for (std::size_t i = 0; i < p.failures.size(); ++i) {
        if (p.failures[i] == 0) continue;
        out += fmt::format(
            "llmassist_provider_failures_total{{provider=\"{}\",class=\"{}\"}} "
            "{}\n",
            label(p.name), to_string(static_cast<FailureClass>(i)), p.failures[i]);
      }
    }
    metric("llmassist_provider_circuit_open", "gauge", "1 while a provider is skipped.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_circuit_open{{provider=\"{}\"}} {}\n", label(p.name),
                         p.circuit_open ? 1 : 0);
    }
  }
  if (in.assistant) {
    const AssistantStats& a = *in.assistant;
    const std::pair<const char*, std::int64_t> counters[] = {
        {"inbound", a.inbound}, {"duplicates", a.duplicates},
        {"drafts", a.drafts},   {"failures", a.failures},
        {"sent", a.sent},       {"send_retries", a.send_retries}};
    for (const auto& [name, value] : counters) {
      metric(fmt::format("llmassist_bot_{}_total", name), "counter",
             "The bot's count since it started.");
      out += fmt::format("llmassist_bot_{}_total {}\n", name, value);
    }
    metric("llmassist_bot_drafts_in_flight", "gauge", "Drafts being generated now.");
    out += fmt::format("llmassist_bot_drafts_in_flight {}\n", a.drafts_in_flight);
  }
  metric("llmassist_admin_event_streams", "gauge", "Open event streams of the web page.");
  out += fmt::format("llmassist_admin_event_streams {}\n", in.event_streams);
  return out;
}

}  // namespace llmassist::detail
