// llmassist-ask: asks one question through the configured provider chain and streams the answer.
// A quick check of a provider setup.
#include <llmassist/bot/provider_config.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

constexpr const char* kHelp =
    R"(llmassist-ask — ask one question through the configured LLM providers

Usage: llmassist-ask [--config FILE] [--system TEXT] [--no-stream] [--verbose] QUESTION...

  --config FILE   a config file whose "providers" list (in fallback order) builds the chain;
                  see docs/configuration.md. Without it: the shipped knowledge base alone,
                  which needs no network.
  --system TEXT   the system prompt (the assistant's role)
  --no-stream     wait for the whole answer instead of printing tokens as they arrive
  --verbose       log what the providers do, and print each provider's counters at the end
  --help          this text

The answer goes to standard output; which provider answered, how many were tried and the
latency go to standard error. Exit status: 0 answered, 1 no answer or every provider failed,
2 bad usage or configuration.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string config;
  std::string system = "You are a helpful support assistant. Answer briefly.";
  std::string question;
  bool stream = true;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return 0;
    } else if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (arg == "--system" && i + 1 < argc) {
      system = argv[++i];
    } else if (arg == "--no-stream") {
      stream = false;
    } else if (arg == "--verbose") {
      verbose = true;
    } else if (arg.rfind("--", 0) == 0) {
      std::cerr << "unknown option " << arg << "\n\n" << kHelp;
      return 2;
    } else {
      question += (question.empty() ? "" : " ") + arg;
    }
  }
  if (question.empty()) {
    std::cerr << "no question given\n\n" << kHelp;
    return 2;
  }

  llmassist::ProviderConfigContext context;
  context.logger =
      llmassist::stderr_logger(verbose ? llmassist::LogLevel::kDebug : llmassist::LogLevel::kError);
  auto chain = config.empty() ? llmassist::make_chain_from_config("{}", context)
                              : llmassist::make_chain_from_config_file(config, context);
  if (!chain.ok()) {
    std::cerr << "llmassist-ask: " << chain.status().message() << "\n";
    return 2;
  }

  llmassist::CompletionRequest request;
  request.messages = {{llmassist::Role::kSystem, system}, {llmassist::Role::kUser, question}};
  llmassist::TokenCallback print;
  if (stream) {
    print = [](std::string_view token) {
      std::fwrite(token.data(), 1, token.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  auto answer = llmassist::complete_sync(**chain, request, print);
  if (!answer.ok()) {
    std::cerr << "llmassist-ask: " << answer.status().message() << "\n";
    return 1;
  }
  if (!stream) std::cout << answer->text;
  std::cout << "\n";
  std::cerr << "— " << answer->provider << (answer->model.empty() ? "" : " (" + answer->model + ")")
            << ", " << answer->latency.count() << " ms, " << answer->providers_tried
            << " provider(s) tried\n";
  if (verbose) {
    for (const auto& s : (*chain)->provider_stats()) {
      std::cerr << "  " << s.name << ": " << s.attempts << " attempts, " << s.successes
                << " answered, " << s.skipped << " skipped"
                << (s.last_error.empty() ? "" : ", last error: " + s.last_error) << "\n";
    }
  }
  return 0;
}
