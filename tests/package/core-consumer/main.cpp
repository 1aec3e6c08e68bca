// An outside program that uses only llmassist::core: a fallback chain over two providers of its
// own, the first always down, behind the core's retry and concurrency-limit decorators.
#include <llmassist/core/limited_provider.h>
#include <llmassist/fallback_chain.h>

#include <cstdio>
#include <memory>

namespace {

class Down final : public llmassist::LlmProvider {
 public:
  std::string_view name() const override { return "down"; }
  void complete(llmassist::CompletionRequest, llmassist::TokenCallback,
                llmassist::CompletionCallback on_done) override {
    on_done(llmassist::unavailable("this provider is down"));
  }
};

class Echo final : public llmassist::LlmProvider {
 public:
  std::string_view name() const override { return "echo"; }
  void complete(llmassist::CompletionRequest request, llmassist::TokenCallback,
                llmassist::CompletionCallback on_done) override {
    llmassist::Completion c;
    c.text = "echo: " + request.messages.back().content;
    on_done(std::move(c));
  }
};

}  // namespace

int main() {
  llmassist::FallbackChainOptions options;
  options.logger = llmassist::null_logger();
  auto echo =
      llmassist::make_concurrency_limited_provider(std::make_shared<Echo>(), {.max_in_flight = 4});
  if (!echo.ok()) return 1;
  auto chain = llmassist::make_fallback_chain(
      {std::make_shared<Down>(), std::shared_ptr<llmassist::LlmProvider>(std::move(*echo))},
      options);
  if (!chain.ok()) return 1;
  llmassist::CompletionRequest request;
  request.messages = {{llmassist::Role::kUser, "hello"}};
  auto answer = llmassist::complete_sync(**chain, request);
  if (!answer.ok()) {
    std::fprintf(stderr, "%s\n", answer.status().to_string().c_str());
    return 1;
  }
  std::printf("%s (from %s after %d providers)\n", answer->text.c_str(), answer->provider.c_str(),
              answer->providers_tried);
  return 0;
}
