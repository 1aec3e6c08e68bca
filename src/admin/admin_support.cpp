#include "admin/admin_support.h"

#include <fmt/format.h>

namespace llmassist::detail {
namespace {

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

std::string prometheus_text(const MetricsInput& in) {
  const Stats& s = *in.stats;
  std::string out;
  const auto metric = [&out](std::string_view name, std::string_view type,
                             std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
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
  if (in.providers) {
    const auto& providers = *in.providers;
    metric("llmassist_provider_attempts_total", "counter", "Requests sent to each provider.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_attempts_total{{provider=\"{}\"}} {}\n",
                         label(p.name), p.attempts);
    }
    metric("llmassist_provider_successes_total", "counter", "Answers from each provider.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_successes_total{{provider=\"{}\"}} {}\n",
                         label(p.name), p.successes);
    }
    metric("llmassist_provider_failures_total", "counter",
           "Failures of each provider, by class.");
    for (const auto& p : providers) {
      for (std::size_t i = 0; i < p.failures.size(); ++i) {
        if (p.failures[i] == 0) continue;
        out += fmt::format("llmassist_provider_failures_total{{provider=\"{}\",class=\"{}\"}} "
                           "{}\n",
                           label(p.name), to_string(static_cast<FailureClass>(i)),
                           p.failures[i]);
      }
    }
    metric("llmassist_provider_circuit_open", "gauge", "1 while a provider is skipped.");
    for (const auto& p : providers) {
      out += fmt::format("llmassist_provider_circuit_open{{provider=\"{}\"}} {}\n",
                         label(p.name), p.circuit_open ? 1 : 0);
    }
  }
  if (in.assistant) {
    const AssistantStats& a = *in.assistant;
    const std::pair<const char*, std::int64_t> counters[] = {
        {"inbound", a.inbound}, {"duplicates", a.duplicates}, {"drafts", a.drafts},
        {"failures", a.failures}, {"sent", a.sent}, {"send_retries", a.send_retries}};
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
