// Internal: a route's path template, matched against a request's path segment by segment, in
// time linear in the path's length and without recursion (a path of any length is safe).
//
// A template is a path whose segments are literal text or a parameter: "{id}" matches a
// segment of ASCII digits, any other "{name}" one non-empty segment. "/api/replies/{id}" matches
// "/api/replies/42" (the parameter "42") but not "/api/replies/x", "/api/replies/" or
// "/api/replies/42/more".
//
// Thread-safety: immutable after construction; match() from any number of threads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist::detail::http {

class LLMASSIST_API RoutePattern {
 public:
  explicit RoutePattern(std::string_view pattern);

  // Whether `path` matches; on a match, the parameters' values (in template order) replace
  // `params`' contents when it is given.
  [[nodiscard]] bool match(std::string_view path, std::vector<std::string>* params) const;

  // The parameters' names, in order ("id" for "{id}").
  [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  enum class Kind : unsigned char { kLiteral, kDigits, kSegment };
  struct Segment {
    Kind kind = Kind::kLiteral;
    std::string literal;  // kLiteral only
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<std::string> names_;
};

}  // namespace llmassist::detail::http
