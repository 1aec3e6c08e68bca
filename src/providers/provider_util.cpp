#include "providers/provider_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "core/json_text.h"

namespace llmassist::detail {

std::string_view model_role(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kSystem:
      return "system";
    case Role::kTool:
      return "tool";
    case Role::kAssistant:
    case Role::kOperator:
      return "assistant";
  }
  return "user";
}

namespace {

std::optional<std::int64_t> parse_int(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty() || s.size() > 12) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c == '.') break;  // "1.5" seconds: take the whole part
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

std::optional<std::chrono::milliseconds> retry_after(const HttpResponse& response) {
  if (auto ms = response.header("retry-after-ms")) {
    if (auto v = parse_int(*ms)) return std::chrono::milliseconds(*v);
  }
  auto value = response.header("retry-after");
  if (!value) return std::nullopt;
  if (auto v = parse_int(*value)) return std::chrono::seconds(*v);
  // An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  const std::string text(*value);
  if (::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
  const auto when = std::chrono::system_clock::from_time_t(::timegm(&tm));
  const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(
      when - std::chrono::system_clock::now());
  return std::max(delay, std::chrono::milliseconds(0));
}

std::string string_or_empty(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::pair<std::string, std::string> openai_error(const nlohmann::json& j) {
  if (!j.is_object()) return {};
  auto it = j.find("error");
  if (it != j.end() && it->is_string()) return {it->get<std::string>(), ""};
  const nlohmann::json& e = (it != j.end() && it->is_object()) ? *it : j;
  std::string message = string_or_empty(e, "message");
  std::string code;
  if (auto c = e.find("code"); c != e.end()) {
    code = c->is_string() ? c->get<std::string>() : c->is_number() ? c->dump() : "";
  }
  if (code.empty()) code = string_or_empty(e, "type");
  // OpenRouter nests the upstream provider's words in metadata.raw.
  if (auto meta = e.find("metadata"); meta != e.end() && meta->is_object()) {
    const std::string raw = string_or_empty(*meta, "raw");
    if (!raw.empty()) message += " (" + raw + ")";
  }
  return {message, code};
}

std::pair<std::string, std::string> openai_error_detail(std::string_view body) {
  nlohmann::json j = parse_json_text(body);
  if (j.is_discarded()) return {clip(body, 200), ""};
  return openai_error(j);
}

std::pair<std::string, std::string> ollama_error_detail(std::string_view body) {
  nlohmann::json j = parse_json_text(body);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end() && e->is_string()) return {*e, ""};
  }
  return {clip(body, 200), ""};
}

std::string clip(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "…";
}

Status http_failure(std::string_view provider, const HttpResponse& response,
                    std::string_view detail, std::string_view error_code) {
  const int code = response.status;
  const std::string what =
      fmt::format("{}: HTTP {}{}{}", provider, code, detail.empty() ? "" : ": ", clip(detail));
  std::string lower(detail);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool context = error_code == "context_length_exceeded" ||
                       lower.find("context length") != std::string::npos ||
                       lower.find("context_length") != std::string::npos ||
                       lower.find("maximum context") != std::string::npos ||
                       lower.find("too many tokens") != std::string::npos;
  Status s;
  if (code == 401) {
    s = unauthenticated(what);
  } else if (code == 403) {
    s = permission_denied(what);
  } else if (code == 404) {
    s = not_found(what);
  } else if (code == 408) {
    s = deadline_exceeded(what);
  } else if (code == 409) {
    s = aborted(what);
  } else if (code == 429) {
    s = resource_exhausted(what);
    if (error_code == "insufficient_quota" ||
        lower.find("insufficient_quota") != std::string::npos) {
      s.with_reason("insufficient_quota");
    }
  } else if (code >= 500) {
    s = unavailable(what);
  } else if ((code == 400 || code == 413 || code == 422) && context) {
    s = Status(StatusCode::kOutOfRange, what).with_reason("context_length_exceeded");
  } else {
    s = invalid_argument(what);
  }
  if (code == 429 || code == 503) {
    if (auto delay = retry_after(response)) s.with_retry_after(*delay);
  }
  return s;
}

bool LineSplitter::feed(std::string_view chunk,
                        const std::function<bool(std::string_view)>& on_line) {
  buffer_.append(chunk);
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buffer_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!on_line(line)) {
      buffer_.erase(0, nl + 1);
      return false;
    }
    start = nl + 1;
  }
  buffer_.erase(0, start);
  return buffer_.size() <= max_line_;
}

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// The length of the longest proper prefix of `tag` that `s` ends with.
std::size_t partial_suffix(std::string_view s, std::string_view tag) {
  for (std::size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == tag.substr(0, k)) return k;
  }
  return 0;
}

}  // namespace

std::string ThinkFilter::feed(std::string_view piece) {
  pending_.append(piece);
  std::string out;
  auto emit = [&](std::string_view text) {
    if (!started_) {
      const auto first = text.find_first_not_of(" \t\r\n");
      if (first == std::string_view::npos) return;  // leading blank space of the answer
      text.remove_prefix(first);
      started_ = true;
    }
    out.append(text);
  };
  while (!pending_.empty()) {
    if (inside_) {
      const auto close = pending_.find(kClose);
      if (close != std::string::npos) {
        reasoning_.append(pending_, 0, close);
        pending_.erase(0, close + kClose.size());
        inside_ = false;
        continue;
      }
      const std::size_t keep = partial_suffix(pending_, kClose);
      reasoning_.append(pending_, 0, pending_.size() - keep);
      pending_.erase(0, pending_.size() - keep);
      break;
    }
    const auto open = pending_.find(kOpen);
    const auto close = pending_.find(kClose);  // a stray closing tag is dropped
    const auto tag = std::min(open, close);
    if (tag != std::string::npos) {
      emit(std::string_view(pending_).substr(0, tag));
      inside_ = tag == open;
      pending_.erase(0, tag + (inside_ ? kOpen.size() : kClose.size()));
      continue;
    }
    const std::size_t keep =
        std::max(partial_suffix(pending_, kOpen), partial_suffix(pending_, kClose));
    emit(std::string_view(pending_).substr(0, pending_.size() - keep));
    pending_.erase(0, pending_.size() - keep);
    break;
  }
  return out;
}

std::string ThinkFilter::finish() {
  std::string rest;
  rest.swap(pending_);
  if (inside_) {
    reasoning_.append(rest);  // an unterminated think block: all of it is reasoning
    return {};
  }
  if (!started_) {
    const auto first = rest.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    rest.erase(0, first);
  }
  return rest;
}

std::string strip_think(std::string_view text, std::string* reasoning) {
  ThinkFilter filter;
  std::string out = filter.feed(text);
  out += filter.finish();
  if (reasoning != nullptr) *reasoning = filter.reasoning();
  return out;
}

}  // namespace llmassist::detail
