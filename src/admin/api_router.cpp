#include "admin/api_router.h"

#include <fmt/format.h>

#include <charconv>

#include "core/constant_time.h"
#include "core/json_text.h"

namespace llmassist::detail {

using nlohmann::json;

namespace {

constexpr const char* kCsrfHeader = "X-CSRF-Token";

bool changes_state(const std::string& method) { return method != "GET" && method != "HEAD"; }

int rank(Access access) { return static_cast<int>(access); }

int rank(AccountRole role) {
  switch (role) {
    case AccountRole::kViewer:
      return rank(Access::kViewer);
    case AccountRole::kOperator:
      return rank(Access::kOperator);
    case AccountRole::kAdmin:
      return rank(Access::kAdmin);
  }
  return 0;
}

std::string_view role_needed(Access access) {
  switch (access) {
    case Access::kOpen:
    case Access::kViewer:
      return "viewer";
    case Access::kOperator:
      return "operator";
    case Access::kAdmin:
      return "admin";
  }
  return "admin";
}

json schema_of(const std::vector<Field>& fields) {
  json properties = json::object();
  json required = json::array();
  for (const Field& f : fields) {
    properties[f.name] = {{"type", f.type}, {"description", f.description}};
    if (f.required) required.push_back(f.name);
  }
  json schema = {{"type", "object"}, {"properties", properties}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

}  // namespace

Result<std::int64_t> Call::id_param(std::size_t n) const {
  const std::string text = param(n);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) {
    return invalid_argument(fmt::format("'{}' is not an id", text.substr(0, 40)));
  }
  return value;
}

std::string Call::query(const char* name, std::string fallback) const {
  return req.has_param(name) ? req.get_param_value(name) : std::move(fallback);
}

Result<std::int64_t> Call::int_query(const char* name, std::int64_t fallback, std::int64_t min,
                                     std::int64_t max) const {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return invalid_argument(
        fmt::format("{}: expected a whole number from {} to {}", name, min, max));
  }
  return value;
}

std::string Call::actor() const { return caller ? "operator:" + caller->account.name : "system"; }

int http_status(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kUnknown:
    case StatusCode::kInternal:
    case StatusCode::kDataLoss:
      return 500;
  }
  return 500;
}

void write_json(http::Response& res, const json& body, int http_status) {
  res.status = http_status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void write_error(http::Response& res, int status, std::string_view code, std::string_view message) {
  write_json(res, {{"error", {{"code", code}, {"message", message}}}}, status);
}

void write_error(http::Response& res, const Status& status) {
  const int http = http_status(status.code());
  if (auto after = status.retry_after()) {
    const auto secs = (after->count() + 999) / 1000;
    res.set_header("Retry-After", std::to_string(std::max<long long>(1, secs)));
  }
  // A server-side failure's text may name files and internals; the log has it.
  const bool internal = http == 500;
  write_error(res, http, to_string(status.code()),
              internal ? "internal error; the server's log says more" : status.message());
}

Result<std::optional<std::string>> string_field(const json& body, const char* name, bool required) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return invalid_argument(fmt::format("{}: required", name));
    return std::optional<std::string>();
  }
  if (!it->is_string()) return invalid_argument(fmt::format("{}: expected a string", name));
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<std::int64_t>> int_field(const json& body, const char* name, bool required) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return invalid_argument(fmt::format("{}: required", name));
    return std::optional<std::int64_t>();
  }
  if (!it->is_number_integer()) {
    return invalid_argument(fmt::format("{}: expected a whole number", name));
  }
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

Result<std::optional<bool>> bool_field(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return invalid_argument(fmt::format("{}: expected true or false", name));
  return std::optional<bool>(it->get<bool>());
}

void ApiRouter::add(Route route) {
  http::RoutePattern pattern(route.path);
  entries_.push_back(std::make_unique<Entry>(Entry{std::move(route), std::move(pattern)}));
}

bool ApiRouter::path_known(const std::string& path) const {
  for (const auto& e : entries_) {
    if (e->pattern.match(path, nullptr)) return true;
  }
  return false;
}

void ApiRouter::install(http::Server& server) {
  for (const auto& e : entries_) {
    const Entry* entry = e.get();
    server.route(entry->route.method, entry->route.path,
                 [this, entry](const http::Request& req, http::Response& res) {
                   dispatch(*entry, req, res);
                 });
  }
  server.set_error_handler([this](const http::Request& req, http::Response& res) {
    switch (res.status) {
      case 404:
        if (path_known(req.path)) {
          write_error(res, 405, "method_not_allowed",
                      fmt::format("{} is not allowed here", req.method));
        } else {
          write_error(res, 404, "not_found", "no such route");
        }
        break;
      case 413:
        write_error(res, 413, "payload_too_large", "the request body is too large");
        break;
      case 414:
        write_error(res, 414, "uri_too_long", "the request's path or query is too long");
        break;
      case 421:
        write_error(res, 421, "misdirected_request",
                    "this server does not answer for that Host (see admin.allowed_hosts)");
        break;
      default:
        write_error(res, res.status, res.status < 500 ? "invalid_argument" : "internal",
                    res.status < 500 ? "the request was refused" : "internal error");
    }
  });
  server.set_exception_handler(
      [this](const http::Request& req, http::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        logger_->log(LogLevel::kError, "admin",
                     fmt::format("{} {} failed: {}", req.method, req.path, what));
        write_error(res, 500, "internal", "internal error; the server's log says more");
      });
}

void ApiRouter::dispatch(const Entry& entry, const http::Request& req, http::Response& res) const {
  const Route& route = entry.route;
  res.set_header("Cache-Control", "no-store");
  Call call{req, res, std::nullopt, json::object()};
  if (route.access != Access::kOpen) {
    auto caller = authenticate_(req);
    if (!caller.ok()) {
      write_public_error(req, res, caller.status());
      return;
    }
    if (rank(caller->account.role) < rank(route.access)) {
      write_error(res, 403, "permission_denied",
                  fmt::format("this needs the {} role; {} is {}", role_needed(route.access),
                              caller->account.name, to_string(caller->account.role)));
      return;
    }
    if (caller->by_session && changes_state(req.method)) {
      const std::string sent = req.get_header_value(kCsrfHeader);
      if (sent.empty() || !constant_time_equal(sent, caller->csrf_token)) {
        write_error(res, 403, "permission_denied",
                    "missing or wrong CSRF token (send the X-CSRF-Token header)");
        return;
      }
    }
    call.caller = std::move(caller).value();
  }
  if (changes_state(req.method) && !req.body.empty()) {
    const std::string type = req.get_header_value("Content-Type");
    if (type.rfind("application/json", 0) != 0) {
      write_error(res, 415, "unsupported_media_type", "send the body as application/json");
      return;
    }
    call.body = detail::parse_json_text(req.body);
    if (call.body.is_discarded() || !call.body.is_object()) {
      write_error(res, 400, "invalid_argument", "the body is not a JSON object");
      return;
    }
  }
  HandlerResult result = route.handler(call);
  if (!result.ok() && !call.caller) {
    write_public_error(req, res, result.status());
    return;
  }
  if (!result.ok()) {
    if (http_status(result.status().code()) == 500) {
      logger_->log(LogLevel::kError, "admin",
                   fmt::format("{} {}: {}", req.method, req.path, result.status().to_string()));
    }
    write_error(res, result.status());
    return;
  }
  if (*result) write_json(res, (*result)->body, (*result)->status);
}

void ApiRouter::write_public_error(const http::Request& req, http::Response& res,
                                   const Status& status) const {
  switch (status.code()) {
    // What an unauthenticated caller may be told: about its own request, in our own words.
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnauthenticated:
    case StatusCode::kResourceExhausted:
    case StatusCode::kNotFound:
      write_error(res, status);
      return;
    default:
      break;
  }
  // Anything else may carry the store's text (a file's path, SQLite's message): the log has it.
  logger_->log(LogLevel::kError, "admin",
               fmt::format("{} {}: {}", req.method, req.path, status.to_string()));
  write_error(res, Status(status.code(), "the server cannot answer this now; its log says why"));
}

json ApiRouter::openapi(std::string_view title, std::string_view version) const {
  json paths = json::object();
  for (const auto& e : entries_) {
    const Route& r = e->route;
    json parameters = json::array();
    for (const auto& name : e->pattern.names()) {
      parameters.push_back({{"name", name},
                            {"in", "path"},
                            {"required", true},
                            {"schema", {{"type", name == "id" ? "integer" : "string"}}}});
    }
    for (const Field& f : r.query) {
      parameters.push_back({{"name", f.name},
                            {"in", "query"},
                            {"required", f.required},
                            {"description", f.description},
                            {"schema", {{"type", f.type}}}});
    }
    json op = {
        {"summary", r.summary},
        {"responses",
         {{"200", {{"description", "done"}}},
          {"4XX",
           {{"description", "the request was refused; nothing changed"},
            {"content",
             {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}}}};
    if (!parameters.empty()) op["parameters"] = parameters;
    if (!r.body.empty()) {
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/json", {{"schema", schema_of(r.body)}}}}}};
    }
    if (r.access == Access::kOpen) {
      op["security"] = json::array();
    } else {
      op["x-required-role"] = role_needed(r.access);
    }
    std::string method = r.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    paths[r.path][method] = op;
  }
  return {
      {"openapi", "3.1.0"},
      {"info", {{"title", title}, {"version", version}}},
      {"paths", paths},
      {"security", json::array({{{"bearer", json::array()}}, {{"session", json::array()}}})},
      {"components",
       {{"securitySchemes",
         {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}},
          {"session", {{"type", "apiKey"}, {"in", "cookie"}, {"name", "llmassist_session"}}}}},
        {"schemas",
         {{"Error",
           {{"type", "object"},
            {"properties",
             {{"error",
               {{"type", "object"},
                {"properties",
                 {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}}}}}}}};
}

}  // namespace llmassist::detail
