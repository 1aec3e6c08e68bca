// Internal: the admin server's routing over the library's HTTP server (http/http_server.h). One
// table of routes, each with the role it needs and its description; from it come the dispatch, the
// checks every route shares (who is asking, their role, the CSRF token, the JSON body), the error
// bodies, 405s, and the OpenAPI document — so the document cannot drift from what is served.
//
// Thread-safety: routes are added before the server starts; dispatch runs on the server's
// threads and only reads the table.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_server.h"
#include "llmassist/account_store.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist::detail {

// Who made a request.
struct Caller {
  Account account;
  bool by_session = false;  // a browser's cookie (changes need the CSRF token), else a token
  std::string csrf_token;   // the session's, when by_session
  std::string session;      // the cookie's secret, when by_session
};

// One request being served.
struct Call {
  const http::Request& req;
  http::Response& res;
  std::optional<Caller> caller;  // set on every route that needs a role
  nlohmann::json body;           // the parsed JSON body; an empty object when there was none

  // The n-th {parameter} of the route's path.
  [[nodiscard]] std::string param(std::size_t n) const {
    return n < req.path_params.size() ? req.path_params[n] : std::string();
  }
  // The n-th {parameter} as a positive id; kInvalidArgument otherwise.
  [[nodiscard]] Result<std::int64_t> id_param(std::size_t n) const;
  // A query parameter; `fallback` when absent.
  [[nodiscard]] std::string query(const char* name, std::string fallback = {}) const;
  // An integer query parameter within [min, max]; kInvalidArgument naming it otherwise.
  [[nodiscard]] Result<std::int64_t> int_query(const char* name, std::int64_t fallback,
                                               std::int64_t min, std::int64_t max) const;
  // The actor of this caller's decisions: "operator:<name>".
  [[nodiscard]] std::string actor() const;
};

// What a handler answers: a JSON value sent with status 200 (or `status`), or an error.
// A handler that wrote the response itself (an event stream, plain text) answers std::nullopt.
struct Reply200 {
  nlohmann::json body;
  int status = 200;
};
using HandlerResult = Result<std::optional<Reply200>>;
using Handler = std::function<HandlerResult(Call&)>;

// A route's requirement: none (open), or a session/token with at least a role.
enum class Access : std::uint8_t { kOpen, kViewer, kOperator, kAdmin };

// One field of a request body or query, for the OpenAPI document.
struct Field {
  std::string name;
  std::string type;  // "string", "integer", "boolean"
  bool required = false;
  std::string description;
};

struct Route {
  std::string method;  // "GET", "POST", "PATCH", "PUT", "DELETE"
  std::string path;    // "/api/replies/{id}"; {id} matches digits, any other {name} a segment
  Access access = Access::kViewer;
  std::string summary;  // one line for the OpenAPI document
  std::vector<Field> query;
  std::vector<Field> body;  // empty: the route takes no body
  Handler handler;
};

// How a request authenticates. Returns kUnauthenticated when nothing valid was presented.
using Authenticator = std::function<Result<Caller>(const http::Request&)>;

class ApiRouter {
 public:
  ApiRouter(std::shared_ptr<Logger> logger, Authenticator authenticate)
      : logger_(std::move(logger)), authenticate_(std::move(authenticate)) {}

  void add(Route route);
  // Registers every route on `server`, with the error handler (JSON bodies for 404, 405, 413,
  // 414, 421)
  // and the exception handler.
  void install(http::Server& server);
  // The OpenAPI 3.1 document of every route.
  [[nodiscard]] nlohmann::json openapi(std::string_view title, std::string_view version) const;

 private:
  struct Entry {
    Route route;
    http::RoutePattern pattern;
  };
  void dispatch(const Entry& entry, const http::Request& req, http::Response& res) const;
  // An error for a caller who has not (or not yet) proved who they are: only the messages of
  // mistakes in the request itself; any other failure's text goes to the log alone.
  void write_public_error(const http::Request& req, http::Response& res,
                          const Status& status) const;
  // Whether some route has this path under another method.
  [[nodiscard]] bool path_known(const std::string& path) const;

  std::shared_ptr<Logger> logger_;
  Authenticator authenticate_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// The HTTP status for a Status code (400 for invalid_argument, 409 for a lost race...).
[[nodiscard]] int http_status(StatusCode code) noexcept;
// {"error": {"code", "message"}} with the matching HTTP status, on `res`.
void write_error(http::Response& res, int http_status, std::string_view code,
                 std::string_view message);
void write_error(http::Response& res, const Status& status);
void write_json(http::Response& res, const nlohmann::json& body, int http_status = 200);

// A JSON body's field, checked: kInvalidArgument naming the field when it is missing (and
// required) or of another type.
[[nodiscard]] Result<std::optional<std::string>> string_field(const nlohmann::json& body,
                                                              const char* name, bool required);
[[nodiscard]] Result<std::optional<std::int64_t>> int_field(const nlohmann::json& body,
                                                            const char* name, bool required);
[[nodiscard]] Result<std::optional<bool>> bool_field(const nlohmann::json& body, const char* name);

}  // namespace llmassist::detail
