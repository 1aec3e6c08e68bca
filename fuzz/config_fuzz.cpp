// The configuration readers (src/bot/): the input is a config file's text, read by
// parse_config_json, parse_bot_config (include/llmassist/bot/bot_config.h) and
// make_chain_from_config and make_embedding_provider_from_config (the whole text taken for an
// embeddings object; include/llmassist/bot/provider_config.h), the providers built over an
// HttpClient and a Scheduler that do nothing. Nothing may crash or throw; every refusal is
// kInvalidArgument naming a place in the file ("$..."), or kNotFound for a file it names; and
// the config text parse_bot_config keeps reads back the same.
//
// The readers open the files a config names (a system prompt, a knowledge base) under a folder
// that does not exist; an input naming an absolute path is only given to parse_config_json, so
// that no fuzzed input reads /dev/stdin or /dev/zero.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bot/json_reader.h"
#include "fuzz_support.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/bot/provider_config.h"
#include "llmassist/logger.h"

namespace {

using llmassist::fuzz::require;

class NullHttpClient final : public llmassist::HttpClient {
 public:
  void send(llmassist::HttpRequest, llmassist::HttpCallback done) override {
    done(llmassist::unavailable("no network in the fuzz target"));
  }
};

class NullScheduler final : public llmassist::Scheduler {
 public:
  void schedule(std::chrono::milliseconds, std::function<void()>) override {}
};

bool names_absolute_path(const nlohmann::json& j) {
  if (j.is_string())
    return !j.get_ref<const std::string&>().empty() &&
           j.get_ref<const std::string&>().front() == '/';
  if (j.is_structured()) {
    for (const auto& item : j) {
      if (names_absolute_path(item)) return true;
    }
  }
  return false;
}

// What every environment variable holds: an API key. An error may quote the config's own text
// (an unknown key, a bad token) but never a key read from the environment.
constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef";

void check_refusal(const llmassist::Status& s, std::string_view text) {
  using llmassist::StatusCode;
  require(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound,
          "a config refused with a code other than kInvalidArgument or kNotFound");
  require(!s.message().empty(), "a config refused without a message");
  require(text.find(kSecret) != std::string_view::npos ||
              s.message().find(kSecret) == std::string::npos,
          "a key in an error message");
}

constexpr const char* kMissingFolder = "/nonexistent-llmassist-fuzz";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = llmassist::fuzz::as_text(data, size);
  auto doc = llmassist::detail::parse_config_json(text);
  if (!doc.ok()) {
    check_refusal(doc.status(), text);
  } else if (names_absolute_path(*doc)) {
    return 0;
  }

  const auto getenv = [](const std::string&) -> std::optional<std::string> {
    return std::string(kSecret);
  };
  llmassist::BotConfigContext bot_context;
  bot_context.getenv = getenv;
  auto bot = llmassist::parse_bot_config(text, kMissingFolder, bot_context);
  if (!bot.ok()) {
    check_refusal(bot.status(), text);
  } else {
    auto again = llmassist::detail::parse_config_json(bot->providers_json);
    require(again.ok() && (text.empty() || *again == *doc),
            "the config text a BotConfig keeps does not read back the same");
  }

  llmassist::ProviderConfigContext chain_context;
  chain_context.getenv = getenv;
  chain_context.base_dir = kMissingFolder;
  chain_context.http = std::make_shared<NullHttpClient>();
  chain_context.scheduler = std::make_shared<NullScheduler>();
  chain_context.logger = llmassist::null_logger();
  auto chain = llmassist::make_chain_from_config(text, chain_context);
  if (!chain.ok()) check_refusal(chain.status(), text);
  auto embedder =
      llmassist::make_embedding_provider_from_config(text, "$.memory.embeddings", chain_context);
  if (!embedder.ok()) {
    check_refusal(embedder.status(), text);
    require(embedder.status().message().rfind("$.memory.embeddings", 0) == 0,
            "an embeddings object refused without its path in front");
  }
  return 0;
}
