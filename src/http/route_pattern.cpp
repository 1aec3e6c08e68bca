#include "http/route_pattern.h"

#include <algorithm>

namespace llmassist::detail::http {

namespace {

// Calls `each` with every segment of `path` after its leading '/' ("/a/b" -> "a", "b"; "/" -> "").
template <typename Each>
bool for_each_segment(std::string_view path, Each each) {
  if (path.empty() || path.front() != '/') return false;
  std::size_t start = 1;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::string_view segment = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!each(segment)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

RoutePattern::RoutePattern(std::string_view pattern) : text_(pattern) {
  const bool ok = for_each_segment(pattern, [this](std::string_view segment) {
    Segment s;
    if (segment.size() >= 2 && segment.front() == '{' && segment.back() == '}') {
      const std::string name(segment.substr(1, segment.size() - 2));
      s.kind = name == "id" ? Kind::kDigits : Kind::kSegment;
      names_.push_back(name);
    } else {
      s.literal = std::string(segment);
    }
    segments_.push_back(std::move(s));
    return true;
  });
  // A template that is not a path matches nothing.
  if (!ok) segments_.clear();
}

bool RoutePattern::match(std::string_view path, std::vector<std::string>* params) const {
  if (segments_.empty()) return false;
  std::size_t i = 0;
  std::vector<std::string_view> values;
  const bool ok = for_each_segment(path, [&](std::string_view segment) {
    if (i == segments_.size()) return false;
    const Segment& s = segments_[i++];
    switch (s.kind) {
      case Kind::kLiteral:
        return segment == s.literal;
      case Kind::kDigits:
        if (!all_digits(segment)) return false;
        break;
      case Kind::kSegment:
        if (segment.empty()) return false;
        break;
    }
    values.push_back(segment);
    return true;
  });
  if (!ok || i != segments_.size()) return false;
  if (params) params->assign(values.begin(), values.end());
  return true;
}

}  // namespace llmassist::detail::http
