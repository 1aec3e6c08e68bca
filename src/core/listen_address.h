// Internal: "host:port" listen addresses, read one way for every server (the admin server, the
// webhook). A listen without a host (":8080", "8080") is refused rather than taken to mean every
// address: a server binds where it is told, and 127.0.0.1 unless told otherwise.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "llmassist/export.h"
#include "llmassist/status.h"

namespace llmassist::detail {

struct LLMASSIST_API ListenAddress {
  std::string host;  // "127.0.0.1", "::1" (brackets removed), "0.0.0.0" when asked for
  int port = 0;      // 0..65535; 0 picks a free port
};

// "127.0.0.1:8080", "[::1]:8080", "localhost:0". kInvalidArgument naming `what` ("admin.listen")
// otherwise: "admin.listen must be host:port, e.g. 127.0.0.1:8080, not \":8080\"".
[[nodiscard]] LLMASSIST_API Result<ListenAddress> parse_listen_address(std::string_view text,
                                                                       std::string_view what);

}  // namespace llmassist::detail
