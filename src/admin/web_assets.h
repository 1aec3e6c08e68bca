// The admin page's files (src/admin/web/ and Chart.js), compiled into the library so that the
// server has nothing to find at run time. The source is generated at build time by
// cmake/embed_web_assets.cmake; the list of files is in CMakeLists.txt.
//
// Thread-safety: immutable data.
#pragma once

#include <span>
#include <string_view>

namespace llmassist::detail {

struct WebAsset {
  std::string_view path;          // the URL path it is served at: "/", "/assets/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;          // the file's bytes, exactly
};

// Every asset, the page ("/") first. Valid for the life of the program.
[[nodiscard]] std::span<const WebAsset> web_assets();

}  // namespace llmassist::detail
