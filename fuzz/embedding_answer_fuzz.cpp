// The embedding providers' answer readers (src/providers/embedding_providers.cpp): the input is
// a response body, read by the OpenAI-compatible and the Ollama embedding provider through an
// HttpClient that delivers it from memory (stream_harness.h), in pieces its last bytes choose;
// they also choose how many texts the request carries (1 to 4) and a response limit. Checked:
// on_done runs once; a success holds one vector per input, all of one non-zero length, every
// value finite; the body read in pieces gives what it gives read whole; read as an error body
// (429, 500) it must not crash; no failure is a success code.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "llmassist/providers/embedding_providers.h"
#include "stream_harness.h"

namespace {

using llmassist::fuzz::require;

struct Seen {
  int calls = 0;
  bool ok = false;
  llmassist::StatusCode code = llmassist::StatusCode::kOk;
  std::vector<std::vector<float>> vectors;
  std::string model;
  int prompt_tokens = 0;
  bool operator==(const Seen& o) const {
    // NaN never gets through, so == on the floats is exact.
    return calls == o.calls && ok == o.ok && code == o.code && vectors == o.vectors &&
           model == o.model && prompt_tokens == o.prompt_tokens;
  }
};

Seen observe(bool openai, std::vector<std::string_view> pieces, std::size_t inputs,
             std::size_t max_bytes, int status) {
  auto client = std::make_shared<llmassist::fuzz::MemoryHttpClient>(std::move(pieces));
  client->set_status(status);
  llmassist::Result<std::unique_ptr<llmassist::EmbeddingProvider>> provider =
      llmassist::internal_error("unmade");
  if (openai) {
    llmassist::OpenAiEmbeddingOptions o;
    o.base_url = "http://127.0.0.1:9/v1";
    o.model = "m";
    o.max_response_bytes = max_bytes;
    o.http = client;
    o.logger = llmassist::null_logger();
    provider = llmassist::make_openai_embedding_provider(o);
  } else {
    llmassist::OllamaEmbeddingOptions o;
    o.base_url = "http://127.0.0.1:9";
    o.model = "m";
    o.max_response_bytes = max_bytes;
    o.http = client;
    o.logger = llmassist::null_logger();
    provider = llmassist::make_ollama_embedding_provider(o);
  }
  require(provider.ok(), "the provider could not be made");
  llmassist::EmbeddingRequest request;
  for (std::size_t i = 0; i < inputs; ++i) request.inputs.push_back("text " + std::to_string(i));
  Seen seen;
  (*provider)->embed(std::move(request), [&](llmassist::Result<llmassist::Embeddings> r) {
    ++seen.calls;
    seen.ok = r.ok();
    if (!r.ok()) {
      seen.code = r.status().code();
      return;
    }
    seen.vectors = r->vectors;
    seen.model = r->model;
    seen.prompt_tokens = r->prompt_tokens;
  });
  require(seen.calls == 1, "on_done did not run exactly once");
  if (seen.ok) {
    require(status == 200, "an error status read as a success");
    require(seen.vectors.size() == inputs, "a success without one vector per input");
    for (const auto& v : seen.vectors) {
      require(!v.empty() && v.size() == seen.vectors[0].size(), "vectors of ragged lengths");
      for (float x : v) require(std::isfinite(x), "a vector holds a value that is not finite");
    }
    require(!seen.model.empty(), "a success without a model");
  } else {
    require(seen.code != llmassist::StatusCode::kOk, "a failure with no code");
  }
  return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = llmassist::fuzz::as_text(data, size);
  llmassist::fuzz::TailBytes tail(body);
  const std::size_t inputs = 1 + tail.next() % 4;
  // Mostly no limit; sometimes one the body may pass.
  const std::uint8_t limit = tail.next();
  const std::size_t max_bytes = limit < 200 ? 0 : static_cast<std::size_t>(limit - 199) * 16;
  const auto pieces = llmassist::fuzz::fuzzed_pieces(body, tail);
  for (bool openai : {true, false}) {
    const Seen whole = observe(openai, {body}, inputs, max_bytes, 200);
    const Seen cut = observe(openai, pieces, inputs, max_bytes, 200);
    require(whole == cut, "an answer read in pieces differs from the answer read whole");
    (void)observe(openai, {body}, inputs, max_bytes, 429);
    (void)observe(openai, {body}, inputs, max_bytes, 500);
  }
  return 0;
}
