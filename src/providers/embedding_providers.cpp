// The embedding providers: OpenAI-compatible /embeddings and Ollama's /api/embed, on one
// exchange that reads a whole answer (bounded), checks it, and classifies failures as the LLM
// providers do.
#include "llmassist/providers/embedding_providers.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/in_flight.h"
#include "core/json_text.h"
#include "providers/model_exchange.h"
#include "providers/provider_util.h"

namespace llmassist {
namespace {

using nlohmann::json;

constexpr int kMaxBatchLimit = 2048;
// The most of an error body kept for its message.
constexpr std::size_t kMaxErrorBody = 64 * 1024;

// What an API's answer held, before the checks every answer gets.
struct Answer {
  std::vector<std::vector<float>> vectors;
  std::string model;
  int prompt_tokens = 0;
};

// The wire format of one embedding API.
struct Wire {
  // Reads a 200 answer (a JSON object without "error") into `out`, or says why it cannot.
  Status (*read)(std::string_view provider, const json& answer, Answer& out);
  // The server's message and machine code in an error body.
  std::pair<std::string, std::string> (*error_detail)(std::string_view body);
};

// `j` as a vector of floats; the reason when it is not a list of finite numbers.
Status read_vector(std::string_view provider, std::size_t i, const json& j,
                   std::vector<float>& out) {
  if (!j.is_array()) {
    return invalid_argument(fmt::format("{}: vector {} is {}, not a list of numbers", provider, i,
                                        j.is_string() ? "a string" : "no list"));
  }
  out.reserve(j.size());
  for (const auto& v : j) {
    const double d = v.is_number() ? v.get<double>() : NAN;
    const auto f = static_cast<float>(d);
    if (!std::isfinite(d) || !std::isfinite(f)) {
      return invalid_argument(
          fmt::format("{}: vector {} holds {}, not a finite number", provider, i,
                      detail::clip(v.dump(-1, ' ', false, json::error_handler_t::replace), 40)));
    }
    out.push_back(f);
  }
  return Status();
}

int integer_or_zero(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
}

// {"data": [{"embedding": [...], "index": i}, ...], "model", "usage": {"prompt_tokens"}}.
Status read_openai(std::string_view provider, const json& answer, Answer& out) {
  auto data = answer.find("data");
  if (data == answer.end() || !data->is_array()) {
    return invalid_argument(fmt::format("{}: the response has no data list", provider));
  }
  const std::size_t n = data->size();
  out.vectors.resize(n);
  std::vector<bool> filled(n, false);
  for (std::size_t k = 0; k < n; ++k) {
    const json& item = (*data)[k];
    if (!item.is_object() || !item.contains("embedding")) {
      return invalid_argument(fmt::format("{}: data[{}] has no embedding", provider, k));
    }
    // Servers that leave "index" out answer in the order of the inputs.
    std::size_t index = k;
    if (auto i = item.find("index"); i != item.end()) {
      if (!i->is_number_unsigned() || i->get<std::uint64_t>() >= n) {
        return invalid_argument(fmt::format(
            "{}: data[{}] has index {}, outside 0..{}", provider, k,
            detail::clip(i->dump(-1, ' ', false, json::error_handler_t::replace), 40), n - 1));
      }
      index = static_cast<std::size_t>(i->get<std::uint64_t>());
    }
    if (filled[index]) {
      return invalid_argument(fmt::format("{}: two vectors have index {}", provider, index));
    }
    filled[index] = true;
    LLMASSIST_RETURN_IF_ERROR(read_vector(provider, index, item["embedding"], out.vectors[index]));
  }
  out.model = detail::string_or_empty(answer, "model");
  if (auto u = answer.find("usage"); u != answer.end() && u->is_object()) {
    out.prompt_tokens = integer_or_zero(*u, "prompt_tokens");
  }
  return Status();
}

// {"model", "embeddings": [[...], ...], "prompt_eval_count"}.
Status read_ollama(std::string_view provider, const json& answer, Answer& out) {
  auto list = answer.find("embeddings");
  if (list == answer.end() || !list->is_array()) {
    return invalid_argument(fmt::format("{}: the response has no embeddings list", provider));
  }
  out.vectors.resize(list->size());
  for (std::size_t i = 0; i < list->size(); ++i) {
    LLMASSIST_RETURN_IF_ERROR(read_vector(provider, i, (*list)[i], out.vectors[i]));
  }
  out.model = detail::string_or_empty(answer, "model");
  out.prompt_tokens = integer_or_zero(answer, "prompt_eval_count");
  return Status();
}

constexpr Wire kOpenAiWire{&read_openai, &detail::openai_error_detail};
constexpr Wire kOllamaWire{&read_ollama, &detail::ollama_error_detail};

// One request, from sending to the Embeddings. Holds no reference to the provider or its
// HttpClient beyond the client start() was given, which outlives its callbacks.
class EmbeddingExchange final : public std::enable_shared_from_this<EmbeddingExchange> {
 public:
  EmbeddingExchange(std::string provider, std::string model, const Wire& wire, std::size_t inputs,
                    std::size_t max_response_bytes, EmbeddingCallback on_done)
      : provider_(std::move(provider)),
        model_(std::move(model)),
        wire_(wire),
        inputs_(inputs),
        max_bytes_(max_response_bytes),
        on_done_(std::move(on_done)),
        started_(std::chrono::steady_clock::now()) {}

  void start(HttpClient& http, HttpRequest request) {
    http_ = &http;
    // Kept without the callbacks (they hold this exchange): no cycle through it.
    resend_ = request;
    send(std::move(request));
  }

 private:
  void send(HttpRequest request) {
    auto self = shared_from_this();
    // The body is read here rather than by the client, so that an answer past the limit is
    // stopped as it grows.
    request.on_headers = [self](const HttpResponse& head) {
      self->status_ = head.status;
      return true;
    };
    request.on_body = [self](std::string_view chunk) { return self->take(chunk); };
    http_->send(std::move(request),
                [self](Result<HttpResponse> result) { self->finish(std::move(result)); });
  }

  bool take(std::string_view chunk) {
    if (status_ != 200) {
      if (body_.size() < kMaxErrorBody) body_.append(chunk.substr(0, kMaxErrorBody - body_.size()));
      return true;
    }
    if (max_bytes_ > 0 && body_.size() + chunk.size() > max_bytes_) {
      failure_ = Status(StatusCode::kOutOfRange,
                        fmt::format("{}: the answer passed {} bytes (max_response_bytes)",
                                    provider_, max_bytes_))
                     .with_reason("response_too_large");
      return false;
    }
    body_.append(chunk);
    return true;
  }

  void finish(Result<HttpResponse> result) {
    std::optional<HttpRequest> again = std::move(resend_);
    resend_.reset();
    const bool withdrawn = again && again->cancel && again->cancel->cancelled();
    if (again && !withdrawn && !failure_ && status_ == 0 && detail::lost_unsent(result)) {
      send(*std::move(again));
      return;
    }
    if (failure_) {
      on_done_(*failure_);
    } else if (!result.ok()) {
      on_done_(result.status().annotate(provider_));
    } else if (result->status != 200) {
      auto [message, code] = wire_.error_detail(body_);
      on_done_(detail::http_failure(provider_, *result, message, code));
    } else {
      on_done_(read());
    }
  }

  Result<Embeddings> read() {
    json j = detail::parse_json_text(body_);
    if (j.is_discarded() || !j.is_object()) {
      return invalid_argument(
          fmt::format("{}: the response is not JSON: {}", provider_, detail::clip(body_, 120)));
    }
    if (j.contains("error")) {
      return unavailable(fmt::format("{}: the server answered with an error: {}", provider_,
                                     detail::clip(wire_.error_detail(body_).first)));
    }
    Answer a;
    LLMASSIST_RETURN_IF_ERROR(wire_.read(provider_, j, a));
    if (a.vectors.size() != inputs_) {
      return invalid_argument(fmt::format("{}: the answer holds {} vectors for {} inputs",
                                          provider_, a.vectors.size(), inputs_));
    }
    const std::size_t dims = a.vectors.front().size();
    if (dims == 0) return invalid_argument(fmt::format("{}: vector 0 is empty", provider_));
    for (std::size_t i = 1; i < a.vectors.size(); ++i) {
      if (a.vectors[i].size() != dims) {
        return invalid_argument(fmt::format("{}: vector {} has {} numbers, vector 0 has {}",
                                            provider_, i, a.vectors[i].size(), dims));
      }
    }
    Embeddings e;
    e.vectors = std::move(a.vectors);
    e.provider = provider_;
    e.model = a.model.empty() ? model_ : std::move(a.model);
    e.prompt_tokens = a.prompt_tokens;
    e.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started_);
    return e;
  }

  const std::string provider_;
  const std::string model_;  // the configured model, for an answer that names none
  const Wire& wire_;
  const std::size_t inputs_;
  const std::size_t max_bytes_;
  const EmbeddingCallback on_done_;
  const std::chrono::steady_clock::time_point started_;
  HttpClient* http_ = nullptr;
  // The request once more, for the one resend finish() may make; cleared once used.
  std::optional<HttpRequest> resend_;
  int status_ = 0;    // the HTTP status, once the headers arrived
  std::string body_;  // the answer (bounded), or the start of an error body
  std::optional<Status> failure_;
};

// What both providers share: the batch checks, the exchange, the requests in flight.
class HttpEmbeddingProvider : public EmbeddingProvider {
 public:
  HttpEmbeddingProvider(std::string name, std::string model, int max_batch,
                        std::size_t max_response_bytes, const Wire& wire,
                        detail::ExchangeTarget target, std::shared_ptr<HttpClient> http)
      : name_(std::move(name)),
        model_(std::move(model)),
        max_batch_(max_batch),
        max_bytes_(max_response_bytes),
        wire_(wire),
        target_(std::move(target)),
        http_(std::move(http)) {}

  // Ends what is in flight with kCancelled, whether the HTTP client is this provider's alone or
  // shared with others.
  ~HttpEmbeddingProvider() override { in_flight_->close(name_); }
  HttpEmbeddingProvider(const HttpEmbeddingProvider&) = delete;
  HttpEmbeddingProvider& operator=(const HttpEmbeddingProvider&) = delete;

  std::string_view name() const final { return name_; }
  std::string_view model() const final { return model_; }
  int max_batch() const final { return max_batch_; }

  void embed(EmbeddingRequest request, EmbeddingCallback on_done) final {
    const std::size_t n = request.inputs.size();
    if (n == 0 || n > static_cast<std::size_t>(max_batch_)) {
      on_done(invalid_argument(
          fmt::format("{}: a request carries 1 to {} inputs, not {}", name_, max_batch_, n)));
      return;
    }
    const std::string body = detail::dump_body(body_for(request.inputs));
    detail::ExchangeTarget target = target_;
    if (request.timeout.count() > 0) target.total_timeout = request.timeout;
    auto call = in_flight_->start({}, std::move(on_done), request.cancel, name_);
    if (!call) return;
    auto exchange = std::make_shared<EmbeddingExchange>(
        name_, model_, wire_, n, max_bytes_,
        [call](Result<Embeddings> result) { call->done(std::move(result)); });
    exchange->start(*http_, detail::post_request(target, body, call->cancel()));
  }

 protected:
  // The request body of the provider's API for `inputs`.
  [[nodiscard]] virtual json body_for(const std::vector<std::string>& inputs) const = 0;

 private:
  const std::string name_;
  const std::string model_;
  const int max_batch_;
  const std::size_t max_bytes_;
  const Wire& wire_;
  const detail::ExchangeTarget target_;
  const std::shared_ptr<detail::EmbeddingInFlightSet> in_flight_ =
      detail::EmbeddingInFlightSet::create();
  // Last member: destroyed first; a client of this provider's alone ends the transfers the
  // destructor cancelled while the rest still exists.
  const std::shared_ptr<HttpClient> http_;
};

class OpenAiEmbeddingProvider final : public HttpEmbeddingProvider {
 public:
  OpenAiEmbeddingProvider(const OpenAiEmbeddingOptions& o, detail::ExchangeTarget target,
                          std::shared_ptr<HttpClient> http)
      : HttpEmbeddingProvider(o.name, o.model, o.max_batch, o.max_response_bytes, kOpenAiWire,
                              std::move(target), std::move(http)),
        dimensions_(o.dimensions) {}

 private:
  json body_for(const std::vector<std::string>& inputs) const override {
    json body = {{"model", model()}, {"input", inputs}, {"encoding_format", "float"}};
    if (dimensions_) body["dimensions"] = *dimensions_;
    return body;
  }

  const std::optional<int> dimensions_;
};

class OllamaEmbeddingProvider final : public HttpEmbeddingProvider {
 public:
  OllamaEmbeddingProvider(const OllamaEmbeddingOptions& o, detail::ExchangeTarget target,
                          std::shared_ptr<HttpClient> http)
      : HttpEmbeddingProvider(o.name, o.model, o.max_batch, o.max_response_bytes, kOllamaWire,
                              std::move(target), std::move(http)),
        truncate_(o.truncate),
        keep_alive_(o.keep_alive) {}

 private:
  json body_for(const std::vector<std::string>& inputs) const override {
    json body = {{"model", model()}, {"input", inputs}};
    if (truncate_) body["truncate"] = *truncate_;
    if (!keep_alive_.empty()) body["keep_alive"] = keep_alive_;
    return body;
  }

  const std::optional<bool> truncate_;
  const std::string keep_alive_;
};

// The endpoint and timeouts: the total timeout bounds the whole request (an embedding answer is
// not streamed, so there is no think time or silence to bound apart).
template <typename Options>
detail::ExchangeTarget target_of(const Options& o, std::string_view path) {
  detail::ExchangeTarget t;
  t.url = o.base_url + std::string(path);
  t.headers = o.extra_headers;
  t.connect_timeout = o.connect_timeout;
  t.first_byte_timeout = std::chrono::milliseconds(0);
  t.total_timeout = o.total_timeout;
  t.idle_timeout = std::chrono::milliseconds(0);
  return t;
}

template <typename Options>
Status check_common(Options& o) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_endpoint(o.name, o.model, o.base_url));
  if (o.max_batch < 1 || o.max_batch > kMaxBatchLimit) {
    return invalid_argument(fmt::format("provider {}: max_batch must be 1 to {}, not {}", o.name,
                                        kMaxBatchLimit, o.max_batch));
  }
  return Status();
}

}  // namespace

Result<std::unique_ptr<EmbeddingProvider>> make_openai_embedding_provider(
    OpenAiEmbeddingOptions options) {
  LLMASSIST_RETURN_IF_ERROR(check_common(options));
  if (options.dimensions && *options.dimensions <= 0) {
    return invalid_argument(fmt::format("provider {}: dimensions must be positive, not {}",
                                        options.name, *options.dimensions));
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto http, detail::client_or_default(options.http, options.logger));
  detail::ExchangeTarget target = target_of(options, "/embeddings");
  if (!options.api_key.empty()) {
    target.headers.emplace_back("Authorization", "Bearer " + options.api_key);
  }
  return std::unique_ptr<EmbeddingProvider>(
      new OpenAiEmbeddingProvider(options, std::move(target), std::move(http)));
}

Result<std::unique_ptr<EmbeddingProvider>> make_ollama_embedding_provider(
    OllamaEmbeddingOptions options) {
  LLMASSIST_RETURN_IF_ERROR(check_common(options));
  LLMASSIST_ASSIGN_OR_RETURN(auto http, detail::client_or_default(options.http, options.logger));
  return std::unique_ptr<EmbeddingProvider>(
      new OllamaEmbeddingProvider(options, target_of(options, "/api/embed"), std::move(http)));
}

}  // namespace llmassist
