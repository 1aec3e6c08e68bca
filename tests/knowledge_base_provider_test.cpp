// The knowledge-base provider on the shipped sample and on small bases written by the tests.
#include <doctest/doctest.h>

#include <fstream>

#include "llmassist/providers/knowledge_base_provider.h"
#include "support/temp_dir.h"

using namespace llmassist;

namespace {

std::unique_ptr<LlmProvider> kb(KnowledgeBaseOptions options = {}) {
  options.logger = null_logger();
  auto p = make_knowledge_base_provider(options);
  REQUIRE_MESSAGE(p.ok(), p.status().to_string());
  return std::move(p).value();
}

Result<Completion> ask(LlmProvider& provider, const std::string& question) {
  CompletionRequest r;
  r.messages = {{Role::kSystem, "You are a support assistant."},
                {Role::kUser, "earlier question about something else entirely"},
                {Role::kAssistant, "earlier answer"},
                {Role::kUser, question}};
  return complete_sync(provider, r);
}

constexpr const char* kShop = R"(# Shop

Intro text that is not an entry.

## How do I return an item?
aka: Can I send it back?
Returns are free within 30 days: open your order and press "Return".

## Where is my order?
aka: track my parcel
Open "My orders": each order shows its tracking link.

## Как изменить пароль?
Откройте Настройки, затем Безопасность.
)";

}  // namespace

TEST_CASE("knowledge base: the shipped sample answers questions about llmassist") {
  auto p = kb();
  CHECK(p->name() == "knowledge_base");
  auto a = ask(*p, "How do I connect the bot to Telegram?");
  REQUIRE_MESSAGE(a.ok(), a.status().to_string());
  CHECK(a->text.find("BotFather") != std::string::npos);
  CHECK(a->provider == "knowledge_base");
  CHECK(a->finish_reason == "stop");
  // Other phrasings, case and punctuation do not matter; the aka lines help.
  auto b = ask(*p, "where do I put the BOT TOKEN??");
  REQUIRE(b.ok());
  CHECK(b->text == a->text);
  auto human = ask(*p, "i want a real person");
  REQUIRE(human.ok());
  CHECK(human->text.find("/human") != std::string::npos);
}

TEST_CASE("knowledge base: a question it does not cover is a no_answer error") {
  auto p = kb();
  for (const char* q : {"What's the weather in Paris tomorrow?", "???", "the and of",
                        "Tell me a joke about penguins"}) {
    auto r = ask(*p, q);
    INFO(q);
    CHECK(r.status().code() == StatusCode::kNotFound);
    CHECK(r.status().reason() == "no_answer");
  }
}

TEST_CASE("knowledge base: Markdown with aka lines, stemming and Cyrillic") {
  KnowledgeBaseOptions o;
  o.text = kShop;
  auto p = kb(o);
  auto r = ask(*p, "I'd like to return items I bought");  // "items" stems to "item"
  REQUIRE(r.ok());
  CHECK(r->text.rfind("Returns are free", 0) == 0);
  r = ask(*p, "Please track my parcel");
  REQUIRE(r.ok());
  CHECK(r->text.find("tracking link") != std::string::npos);
  r = ask(*p, "как ИЗМЕНИТЬ пароль");
  REQUIRE(r.ok());
  CHECK(r->text.find("Настройки") != std::string::npos);
  // The intro before the first question is no entry.
  CHECK(ask(*p, "intro text entry").status().code() == StatusCode::kNotFound);
}

TEST_CASE("knowledge base: the threshold decides how much of the question must match") {
  KnowledgeBaseOptions o;
  o.text = kShop;
  o.min_score = 0.9;
  auto strict = kb(o);
  // "return" is covered, "warranty" and "broken" are not: half the weight or less.
  CHECK(ask(*strict, "return a broken item under warranty").status().code() ==
        StatusCode::kNotFound);
  o.min_score = 0.2;
  auto lenient = kb(o);
  CHECK(ask(*lenient, "return a broken item under warranty").ok());
  o.min_score = 1.5;
  CHECK(make_knowledge_base_provider(o).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("knowledge base: JSON files, and streaming delivers the answer as a token") {
  llmassist::testing::TempDir dir;
  const std::string path = dir.file("kb.json");
  std::ofstream(path) << R"({"entries": [
      {"question": "What are your opening hours?", "answer": "9 to 5, Monday to Friday.",
       "aka": ["when are you open"]}]})";
  KnowledgeBaseOptions o;
  o.path = path;
  auto p = kb(o);
  std::string streamed;
  CompletionRequest r;
  r.messages = {{Role::kUser, "When are you open?"}};
  auto c = complete_sync(*p, r, [&](std::string_view t) {
    streamed += t;
    return true;
  });
  REQUIRE(c.ok());
  CHECK(streamed == "9 to 5, Monday to Friday.");
  CHECK(c->text == streamed);
  // A token callback that says stop cancels.
  auto stopped = complete_sync(*p, r, [](std::string_view) { return false; });
  CHECK(stopped.status().code() == StatusCode::kCancelled);
}

TEST_CASE("knowledge base: malformed files are refused with the place of the fault") {
  llmassist::testing::TempDir dir;
  auto load = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir.file(name)) << content;
    KnowledgeBaseOptions o;
    o.path = dir.file(name);
    o.logger = null_logger();
    return make_knowledge_base_provider(o).status();
  };
  Status s = load("a.md", "## Question one\nAnswer.\n\n## Question two\n\n## Three\nx\n");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("a.md:4") != std::string::npos);
  CHECK(s.message().find("Question two") != std::string::npos);
  s = load("empty.md", "# Only a title\n\nSome text.\n");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("no entries") != std::string::npos);
  s = load("b.json", R"([{"question": "q", "answer": "a", "answr": "typo"}])");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("$[0].answr") != std::string::npos);
  s = load("c.json", R"([{"question": "q", "answer": 42}])");
  CHECK(s.message().find("$[0].answer must be a non-empty string") != std::string::npos);
  s = load("d.json", R"({"entries": [)");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("not valid JSON") != std::string::npos);
  KnowledgeBaseOptions missing;
  missing.path = dir.file("nope.md");
  CHECK(make_knowledge_base_provider(missing).status().code() == StatusCode::kNotFound);
}

TEST_CASE("knowledge base: a request without a user message is invalid, FTS syntax is inert") {
  auto p = kb();
  CompletionRequest r;
  r.messages = {{Role::kSystem, "only a system prompt"}};
  CHECK(complete_sync(*p, r).status().code() == StatusCode::kInvalidArgument);
  // Words that are FTS5 operators or carry quotes are searched as words, not syntax.
  for (const char* q : {"NOT OR AND NEAR(", "\"unterminated", "token* ^start -minus {col}:x"}) {
    auto a = ask(*p, q);
    CHECK((a.ok() || a.status().code() == StatusCode::kNotFound));
  }
}

TEST_CASE("knowledge base: with nothing configured, each language is answered in its own") {
  auto p = kb();
  struct Pair {
    const char* english;
    const char* english_answer;
    const char* russian;
    const char* russian_answer;
  };
  const Pair pairs[] = {
      {"How do I connect the bot to Telegram?", "Create a bot with @BotFather",
       "Как подключить бота к Телеграму?", "Создайте бота у @BotFather"},
      {"I want a real person", "Press the \"Talk to a human\" button",
       "Хочу поговорить с живым человеком", "Отправьте /human"},
      {"Which database does llmassist use?", "In a SQLite database",
       "Какую базу данных использует llmassist?", "В базе данных SQLite"},
      {"How do I reset the conversation?", "Send /start.", "Как сбросить диалог?",
       "Отправьте /start."},
      {"How do I set the system prompt?", "Set `assistant.system_prompt`",
       "Как задать системный промпт?", "Задайте `assistant.system_prompt`"},
  };
  for (const auto& pair : pairs) {
    INFO(pair.english);
    auto en = ask(*p, pair.english);
    REQUIRE_MESSAGE(en.ok(), en.status().to_string());
    CHECK(en->text.rfind(pair.english_answer, 0) == 0);
    INFO(pair.russian);
    auto ru = ask(*p, pair.russian);
    REQUIRE_MESSAGE(ru.ok(), ru.status().to_string());
    CHECK(ru->text.rfind(pair.russian_answer, 0) == 0);
  }
  // The sample tells how to use PostgreSQL, in both languages.
  CHECK(sample_knowledge_base().find("use PostgreSQL: set `database` to its URL") !=
        std::string_view::npos);
  CHECK(sample_knowledge_base_ru().find("есть PostgreSQL: укажите в\n`database` её адрес") !=
        std::string_view::npos);
}

TEST_CASE("knowledge base: Russian questions match inflected forms of the entry's words") {
  KnowledgeBaseOptions o;
  o.text = R"(## Как вернуть заказ?
aka: Возврат товара
Откройте раздел «Мои заказы» и нажмите «Вернуть»: возврат бесплатный в течение 30 дней.

## Как оплатить картой?
Мы принимаем карты Visa, Mastercard и «Мир».

## How do I pay by card?
We take Visa and Mastercard.
)";
  auto p = kb(o);
  // Other cases and numbers of the same words: "заказы", "заказа" and "заказ" are one term.
  for (const char* q : {"Как вернуть заказы?", "возвращаю товары, как быть", "ВОЗВРАТ ЗАКАЗА"}) {
    INFO(q);
    auto r = ask(*p, q);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->text.rfind("Откройте раздел", 0) == 0);
  }
  auto card = ask(*p, "Можно оплатить картами?");
  REQUIRE(card.ok());
  CHECK(card->text.rfind("Мы принимаем", 0) == 0);
  auto english = ask(*p, "Paying by cards?");  // "paying", "cards": "pay", "card"
  REQUIRE(english.ok());
  CHECK(english->text.rfind("We take", 0) == 0);
  CHECK(ask(*p, "Какая завтра погода в Москве?").status().code() == StatusCode::kNotFound);
}
