#include "support/mock_llm_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <memory>

namespace llmassist::testing {

using nlohmann::json;

MockLlmServer::MockLlmServer() {
  http_.http().Post("/v1/chat/completions",
                    [this](const httplib::Request& req, httplib::Response& res) {
                      counted([&] { serve_openai(req, res); });
                    });
  http_.http().Post("/api/chat", [this](const httplib::Request& req, httplib::Response& res) {
    counted([&] { serve_ollama(req, res); });
  });
  http_.http().Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
    counted([&] { serve_embeddings(req, res, true); });
  });
  http_.http().Post("/api/embed", [this](const httplib::Request& req, httplib::Response& res) {
    counted([&] { serve_embeddings(req, res, false); });
  });
  http_.start();
}

MockLlmServer::~MockLlmServer() { http_.stop(); }

template <typename Handler>
void MockLlmServer::counted(Handler&& handler) {
  const int now = ++in_flight_;
  int most = max_in_flight_.load();
  while (now > most && !max_in_flight_.compare_exchange_weak(most, now)) {
  }
  // The held requests wait for this one. (Woken at every arrival, a thousand waiting requests
  // would be woken a million times.)
  const int target = hold_target_.load();
  if (target > 0 && now >= target) http_.notify();
  handler();
  --in_flight_;
}

void MockLlmServer::set(Behavior behavior) {
  std::lock_guard lock(mu_);
  hold_target_ = behavior.hold_until_in_flight;
  behavior_ = std::move(behavior);
  next_.clear();
}

void MockLlmServer::set_next(Behavior behavior, int count) {
  std::lock_guard lock(mu_);
  if (behavior.hold_until_in_flight > 0) hold_target_ = behavior.hold_until_in_flight;
  for (int i = 0; i < count; ++i) next_.push_back(behavior);
}

int MockLlmServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

json MockLlmServer::last_body() const {
  std::lock_guard lock(mu_);
  return last_body_;
}

std::vector<json> MockLlmServer::bodies(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = bodies_.find(path);
  return it == bodies_.end() ? std::vector<json>() : it->second;
}

void MockLlmServer::clear_bodies() {
  std::lock_guard lock(mu_);
  bodies_.clear();
}

std::string MockLlmServer::last_header(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = last_headers_.find(name);
  return it == last_headers_.end() ? "" : it->second;
}

MockLlmServer::Behavior MockLlmServer::take() {
  std::lock_guard lock(mu_);
  ++requests_;
  if (!next_.empty()) {
    Behavior b = std::move(next_.front());
    next_.erase(next_.begin());
    return b;
  }
  return behavior_;
}

void MockLlmServer::record(const httplib::Request& req, json body) {
  std::lock_guard lock(mu_);
  bodies_[req.path].push_back(body);
  last_body_ = std::move(body);
  last_headers_ = req.headers;
}

bool MockLlmServer::prelude(const Behavior& b) {
  if (b.hold_until_in_flight > 0) {
    http_.wait_until([&] { return max_in_flight_.load() >= b.hold_until_in_flight; },
                     b.hold_timeout);
    if (http_.stopping()) return false;
  }
  if (b.hang) {
    http_.wait_for(std::chrono::hours(1));
    return false;
  }
  if (b.delay.count() > 0 && !http_.wait_for(b.delay)) return false;
  return true;
}

namespace {

std::string last_user_message(const json& body) {
  if (!body.is_object() || !body.contains("messages") || !body["messages"].is_array()) return "";
  std::string last;
  for (const auto& m : body["messages"]) {
    if (m.is_object() && m.value("role", "") == "user" && m.contains("content") &&
        m["content"].is_string()) {
      last = m["content"].get<std::string>();
    }
  }
  return last;
}

void set_error(httplib::Response& res, const MockLlmServer::Behavior& b, bool openai) {
  res.status = b.status;
  if (b.retry_after_seconds) res.set_header("Retry-After", std::to_string(*b.retry_after_seconds));
  std::string body = b.error_body;
  if (body.empty()) {
    const std::string message = fmt::format("mock failure {}", b.status);
    body = openai ? json{{"error",
                          {{"message", message},
                           {"type", "mock"},
                           {"code", b.error_code.empty() ? json(nullptr) : json(b.error_code)}}}}
                        .dump()
                  : json{{"error", message}}.dump();
  }
  res.set_content(body, "application/json");
}

// Ollama's tool calls: each whole, its arguments an object (a text that is not JSON as it is).
json ollama_calls(const std::vector<MockLlmServer::ToolCallAnswer>& calls) {
  json out = json::array();
  for (const auto& c : calls) {
    json args = json::parse(c.arguments, nullptr, false);
    out.push_back(
        {{"function",
          {{"name", c.name}, {"arguments", args.is_discarded() ? json(c.arguments) : args}}}});
  }
  return out;
}

// The shared state of one streamed answer, kept alive by the content provider.
struct StreamState {
  MockLlmServer::Behavior b;
  std::size_t next = 0;  // the next token to send
  bool reasoning_sent = false;
  bool finished = false;
  int rounds = 0;  // of an endless stream
};

}  // namespace

void MockLlmServer::serve_openai(const httplib::Request& req, httplib::Response& res) {
  Behavior b = take();
  json body = json::parse(req.body, nullptr, false);
  record(req, body);
  if (b.script) b.script(body, b);
  if (!prelude(b)) return;
  if (b.status != 200) {
    set_error(res, b, true);
    return;
  }
  const bool stream = body.is_object() && body.value("stream", false);
  Behavior echo = b;
  if (b.echo_question) echo.tokens = {"Answer to: " + last_user_message(body)};
  std::string content;
  for (const auto& t : echo.tokens) content += t;
  if (b.inline_think) content = "<think>" + b.reasoning + "</think>\n\n" + content;
  if (!stream) {
    if (b.malformed) {
      res.set_content("{\"choices\": [{\"message\": ", "application/json");
      return;
    }
    json answer = {{"id", "chatcmpl-mock"}, {"object", "chat.completion"}, {"model", "mock-model"}};
    if (b.empty_choices) {
      answer["choices"] = json::array();
    } else {
      json message = {{"role", "assistant"}, {"content", content}};
      if (!b.reasoning.empty() && !b.inline_think) message["reasoning"] = b.reasoning;
      if (!b.tool_calls.empty()) {
        if (content.empty()) message["content"] = nullptr;
        message["tool_calls"] = json::array();
        for (const auto& c : b.tool_calls) {
          message["tool_calls"].push_back(
              {{"id", c.id},
               {"type", "function"},
               {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        }
      }
      answer["choices"] =
          json::array({{{"index", 0},
                        {"message", message},
                        {"finish_reason", b.tool_calls.empty() ? "stop" : "tool_calls"}}});
    }
    answer["usage"] = {{"prompt_tokens", 11}, {"completion_tokens", 7}, {"total_tokens", 18}};
    res.set_content(answer.dump(), "application/json");
    return;
  }
  auto state = std::make_shared<StreamState>();
  state->b = echo;
  if (b.inline_think)
    state->b.tokens.insert(state->b.tokens.begin(), "<think>" + b.reasoning + "</think>\n\n");
  res.set_chunked_content_provider("text/event-stream", [this, state](std::size_t,
                                                                      httplib::DataSink& sink) {
    StreamState& s = *state;
    auto event = [&](const json& j) {
      const std::string line = "data: " + j.dump() + "\n\n";
      return sink.write(line.data(), line.size());
    };
    auto chunk = [](json delta, json finish) {
      return json{{"id", "chatcmpl-mock"},
                  {"object", "chat.completion.chunk"},
                  {"model", "mock-model"},
                  {"choices", json::array({{{"index", 0},
                                            {"delta", std::move(delta)},
                                            {"finish_reason", std::move(finish)}}})}};
    };
    if (s.b.sse_comments && s.next == 0 && !s.reasoning_sent) {
      const std::string comment = ": OPENROUTER PROCESSING\n\n";
      sink.write(comment.data(), comment.size());
    }
    if (s.b.malformed) {
      const std::string bad = "data: {\"choices\": [{\"delta\": {\"content\": \"x\"\n\n";
      sink.write(bad.data(), bad.size());
      sink.done();
      return true;
    }
    if (s.b.empty_choices) {
      event(json{{"id", "chatcmpl-mock"}, {"choices", json::array()}});
      const std::string done = "data: [DONE]\n\n";
      sink.write(done.data(), done.size());
      sink.done();
      return true;
    }
    if (!s.reasoning_sent && !s.b.reasoning.empty() && !s.b.inline_think) {
      s.reasoning_sent = true;
      return event(chunk(
          {{"role", "assistant"}, {"content", nullptr}, {"reasoning", s.b.reasoning}}, nullptr));
    }
    s.reasoning_sent = true;
    if (s.b.endless && s.next >= s.b.tokens.size() && ++s.rounds < 100000) s.next = 0;
    if (s.next < s.b.tokens.size()) {
      if (s.b.cut_after_tokens >= 0 && static_cast<int>(s.next) >= s.b.cut_after_tokens) {
        return false;  // drop the connection: no [DONE], no finish_reason
      }
      if (s.next > 0 && s.b.token_delay.count() > 0 && !http_.wait_for(s.b.token_delay)) {
        return false;
      }
      const bool ok = event(chunk({{"content", s.b.tokens[s.next]}}, nullptr));
      ++s.next;
      if (s.b.error_event && s.next == 1) {
        event(json{{"error", {{"message", "upstream provider crashed"}, {"code", 502}}}});
        sink.done();
      }
      return ok;
    }
    for (std::size_t i = 0; i < s.b.tool_calls.size(); ++i) {
      const auto& c = s.b.tool_calls[i];
      event(chunk(
          {{"tool_calls", json::array({{{"index", i},
                                        {"id", c.id},
                                        {"type", "function"},
                                        {"function", {{"name", c.name}, {"arguments", ""}}}}})}},
          nullptr));
      const std::size_t half = c.arguments.size() / 2;
      for (const std::string& part : {c.arguments.substr(0, half), c.arguments.substr(half)}) {
        event(chunk(
            {{"tool_calls", json::array({{{"index", i}, {"function", {{"arguments", part}}}}})}},
            nullptr));
      }
    }
    event(chunk(json::object(), s.b.tool_calls.empty() ? "stop" : "tool_calls"));
    event(json{{"id", "chatcmpl-mock"},
               {"choices", json::array()},
               {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 7}}}});
    const std::string done = "data: [DONE]\n\n";
    sink.write(done.data(), done.size());
    sink.done();
    return true;
  });
}

void MockLlmServer::serve_ollama(const httplib::Request& req, httplib::Response& res) {
  Behavior b = take();
  json body = json::parse(req.body, nullptr, false);
  record(req, body);
  if (b.script) b.script(body, b);
  if (!prelude(b)) return;
  if (b.status != 200) {
    set_error(res, b, false);
    return;
  }
  const bool stream = !body.is_object() || body.value("stream", true);
  std::string content;
  for (const auto& t : b.tokens) content += t;
  if (b.inline_think) content = "<think>" + b.reasoning + "</think>\n\n" + content;
  auto final_line = [] {
    return json{{"model", "mock-model"},
                {"message", {{"role", "assistant"}, {"content", ""}}},
                {"done", true},
                {"done_reason", "stop"},
                {"prompt_eval_count", 11},
                {"eval_count", 7}};
  };
  if (!stream) {
    if (b.malformed) {
      res.set_content("{\"message\": {", "application/json");
      return;
    }
    json answer = final_line();
    answer["message"]["content"] = content;
    if (!b.tool_calls.empty()) answer["message"]["tool_calls"] = ollama_calls(b.tool_calls);
    if (!b.reasoning.empty() && !b.inline_think) answer["message"]["thinking"] = b.reasoning;
    res.set_content(answer.dump(), "application/json");
    return;
  }
  auto state = std::make_shared<StreamState>();
  state->b = b;
  if (b.inline_think)
    state->b.tokens.insert(state->b.tokens.begin(), "<think>" + b.reasoning + "</think>\n\n");
  res.set_chunked_content_provider(
      "application/x-ndjson", [this, state, final_line](std::size_t, httplib::DataSink& sink) {
        StreamState& s = *state;
        auto line = [&](const json& j) {
          const std::string text = j.dump() + "\n";
          return sink.write(text.data(), text.size());
        };
        auto piece = [](json message) {
          return json{{"model", "mock-model"}, {"message", std::move(message)}, {"done", false}};
        };
        if (s.b.malformed) {
          const std::string bad = "{\"message\": {\"content\": \"x\"\n";
          sink.write(bad.data(), bad.size());
          sink.done();
          return true;
        }
        if (!s.reasoning_sent && !s.b.reasoning.empty() && !s.b.inline_think) {
          s.reasoning_sent = true;
          return line(piece({{"role", "assistant"}, {"content", ""}, {"thinking", s.b.reasoning}}));
        }
        s.reasoning_sent = true;
        if (s.b.endless && s.next >= s.b.tokens.size() && ++s.rounds < 100000) s.next = 0;
        if (s.next < s.b.tokens.size()) {
          if (s.b.cut_after_tokens >= 0 && static_cast<int>(s.next) >= s.b.cut_after_tokens) {
            return false;
          }
          if (s.next > 0 && s.b.token_delay.count() > 0 && !http_.wait_for(s.b.token_delay)) {
            return false;
          }
          const bool ok = line(piece({{"role", "assistant"}, {"content", s.b.tokens[s.next]}}));
          ++s.next;
          if (s.b.error_event && s.next == 1) {
            line(json{{"error", "model runner has unexpectedly stopped"}});
            sink.done();
          }
          return ok;
        }
        if (!s.b.tool_calls.empty()) {
          line(piece({{"role", "assistant"},
                      {"content", ""},
                      {"tool_calls", ollama_calls(s.b.tool_calls)}}));
        }
        line(final_line());
        sink.done();
        return true;
      });
}

std::vector<float> MockLlmServer::bag_of_words(std::string_view text, int dims) {
  std::vector<float> v(static_cast<std::size_t>(std::max(dims, 1)), 0.0F);
  auto word_byte = [](unsigned char c) { return c >= 0x80 || std::isalnum(c) != 0; };
  std::size_t i = 0;
  while (i < text.size()) {
    if (!word_byte(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::uint32_t hash = 2166136261U;
    for (; i < text.size() && word_byte(static_cast<unsigned char>(text[i])); ++i) {
      const auto c = static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(text[i])));
      hash = (hash ^ c) * 16777619U;
    }
    v[hash % v.size()] += 1.0F;
  }
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  }
  return v;
}

namespace {

// The words of `text`, as bag_of_words() counts them: the mock's token count.
int word_count(std::string_view text) {
  int words = 0;
  bool in_word = false;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool w = c >= 0x80 || std::isalnum(c) != 0;
    if (w && !in_word) ++words;
    in_word = w;
  }
  return words;
}

}  // namespace

void MockLlmServer::serve_embeddings(const httplib::Request& req, httplib::Response& res,
                                     bool openai) {
  const Behavior b = take();
  json body = json::parse(req.body, nullptr, false);
  record(req, body);
  if (!prelude(b)) return;
  if (b.status != 200) {
    set_error(res, b, openai);
    return;
  }
  if (b.malformed) {
    res.set_content(openai ? "{\"data\": [{\"embedding\": [0.1, " : "{\"embeddings\": [[",
                    "application/json");
    return;
  }
  // The real servers take one string or a list of them.
  std::vector<std::string> inputs;
  const json input = body.is_object() && body.contains("input") ? body["input"] : json();
  if (input.is_string()) {
    inputs.push_back(input.get<std::string>());
  } else if (input.is_array()) {
    for (const auto& i : input) {
      if (i.is_string()) inputs.push_back(i.get<std::string>());
    }
  }
  if (inputs.empty()) {
    res.status = 400;
    res.set_content(openai ? R"({"error": {"message": "'input' is required", "code": null}})"
                           : R"({"error": "input is required"})",
                    "application/json");
    return;
  }
  const std::string model = body.is_object() ? body.value("model", "mock-embed") : "mock-embed";
  int dims = b.embedding_dims;
  if (openai && body.is_object() && body.contains("dimensions") &&
      body["dimensions"].is_number_integer()) {
    dims = body["dimensions"].get<int>();
  }
  int tokens = 0;
  for (const auto& text : inputs) tokens += word_count(text);
  const int count = std::max(0, static_cast<int>(inputs.size()) + b.extra_vectors);
  std::vector<json> vectors;
  for (int i = 0; i < count; ++i) {
    const std::string& text = inputs[static_cast<std::size_t>(i) % inputs.size()];
    json v = json::array();
    for (float x : bag_of_words(text, dims)) v.push_back(static_cast<double>(x));
    vectors.push_back(std::move(v));
  }
  json answer;
  if (openai) {
    json data = json::array();
    for (int i = 0; i < count; ++i) {
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vectors[i]}});
    }
    if (b.reversed_order) std::reverse(data.begin(), data.end());
    answer = {{"object", "list"},
              {"data", std::move(data)},
              {"model", model},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  } else {
    answer = {{"model", model},
              {"embeddings", std::move(vectors)},
              {"total_duration", 14143917},
              {"load_duration", 1019500},
              {"prompt_eval_count", tokens}};
  }
  res.set_content(answer.dump(), "application/json");
}

}  // namespace llmassist::testing
