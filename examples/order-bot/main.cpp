// llmassist-order-bot: a console bot whose model may look orders up with a tool written here
// (docs/tools.md). The providers come from a config file; the model must take tools (an
// OpenAI-compatible or Ollama provider). Type a question, get an answer; Ctrl-D ends it.
#include <llmassist/bot/builder.h>

#include <future>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

// The shop's orders: where a real tool would ask the shop's database.
const std::map<std::string, std::string> kOrders = {
    {"A-17", "shipped on 2 December, arriving on 5 December"},
    {"B-2", "being packed"},
};

llmassist::Result<std::string> look_up(const llmassist::ToolContext&, const std::string& args) {
  const auto request = nlohmann::json::parse(args, nullptr, false);
  if (!request.is_object() || !request.contains("order") || !request["order"].is_string()) {
    return llmassist::invalid_argument("give the order number as \"order\"");
  }
  const auto it = kOrders.find(request["order"].get<std::string>());
  nlohmann::json answer = {{"order", request["order"]}};
  answer["status"] = it == kOrders.end() ? "no such order" : it->second;
  return answer.dump();
}

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      std::cout << "Usage: llmassist-order-bot [--config FILE]\n"
                   "  a console bot whose model may look orders up; it stores in ./llmassist.db\n"
                   "  FILE: the bot's config (docs/configuration.md), with a provider that\n"
                   "  takes tools\n";
      return a == "--help" ? 0 : 2;
    }
  }
  auto config = llmassist::load_bot_config(config_path);
  auto tool = llmassist::make_tool(
      {"order_lookup", "Finds a customer's order by its number and tells its status",
       R"({"type": "object", "properties": {"order": {"type": "string",
           "description": "the order number, such as A-17"}}, "required": ["order"]})"},
      /*side_effects=*/false, look_up);
  std::promise<void> input_ended;
  auto bot = config.ok() && tool.ok() ? llmassist::BotBuilder(*config)
                                            .tool(*tool)
                                            .on_console_end([&] { input_ended.set_value(); })
                                            .build()
                                      : llmassist::Result<std::unique_ptr<llmassist::Bot>>(
                                            config.ok() ? tool.status() : config.status());
  const auto started = bot.ok() ? (*bot)->start() : bot.status();
  if (!started.ok()) {
    std::cerr << "llmassist-order-bot: " << started.to_string() << "\n";
    return 1;
  }
  input_ended.get_future().wait();
  (*bot)->wait_idle(std::chrono::seconds(30));
  (*bot)->stop();
}
