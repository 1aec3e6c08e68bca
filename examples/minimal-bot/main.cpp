// llmassist-minimal-bot: a console bot whose answers come from a provider written here. Type a
// question, get an answer; Ctrl-D ends it. All else is the library's defaults (docs/builder.md).
#include <llmassist/bot/builder.h>

#include <future>
#include <iostream>

// A provider of our own: where a real one would ask a model, this one repeats the question.
class Parrot final : public llmassist::LlmProvider {
 public:
  std::string_view name() const override { return "parrot"; }
  void complete(llmassist::CompletionRequest request, llmassist::TokenCallback,
                llmassist::CompletionCallback on_done) override {
    llmassist::Completion answer;
    answer.text = "You asked: " + request.messages.back().content;
    on_done(std::move(answer));
  }
};

int main(int argc, char** argv) {
  if (argc > 1) {  // --help, or anything else
    std::cout << "Usage: llmassist-minimal-bot\n  a console bot; it stores in ./llmassist.db\n";
    return std::string(argv[1]) == "--help" ? 0 : 2;
  }
  std::promise<void> input_ended;
  auto bot = llmassist::BotBuilder()
                 .provider(std::make_shared<Parrot>())
                 .on_console_end([&] { input_ended.set_value(); })
                 .build();
  const auto started = bot.ok() ? (*bot)->start() : bot.status();
  if (!started.ok()) {
    std::cerr << "llmassist-minimal-bot: " << started.to_string() << "\n";
    return 1;
  }
  input_ended.get_future().wait();
  (*bot)->wait_idle(std::chrono::seconds(30));
  (*bot)->stop();
}
