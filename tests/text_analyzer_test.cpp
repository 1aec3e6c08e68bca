// The text analysis of the full-text indexes: Snowball stems for Russian and English, case
// folding, function words dropped.
#include "memory/text_analyzer.h"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

using llmassist::detail::analyze_terms;
using llmassist::detail::analyzed_text;
using llmassist::detail::AnalyzeOptions;
using llmassist::detail::fold_case;

TEST_CASE("text analyzer: forms of one Russian word are one term") {
  const auto a = analyze_terms("Где мой заказ?");
  const auto b = analyze_terms("заказы");
  const auto c = analyze_terms("ЗАКАЗА");
  REQUIRE(a.size() == 1);  // "где" and "мой" are function words
  CHECK(a == b);
  CHECK(b == c);
  CHECK(analyze_terms("подключения") == analyze_terms("подключение"));
}

TEST_CASE("text analyzer: forms of one English word are one term") {
  CHECK(analyze_terms("orders") == analyze_terms("Ordered"));
  CHECK(analyze_terms("connecting") == analyze_terms("connect"));
  CHECK(analyze_terms("How do I connect the bot to Telegram?") ==
        std::vector<std::string>{"connect", "bot", "telegram"});
}

TEST_CASE("text analyzer: case folding covers Cyrillic, Latin-1 and ё") {
  CHECK(fold_case("ПРИВЕТ Ёлка ÄÖÜ") == "привет елка äöü");
  CHECK(analyze_terms("Ёжик") == analyze_terms("ежик"));
}

TEST_CASE("text analyzer: digits stay, punctuation and emoji split, stopwords kept on request") {
  CHECK(analyze_terms("order #12345, please!") == std::vector<std::string>{"order", "12345"});
  CHECK(analyze_terms("pizza🍕pasta") == std::vector<std::string>{"pizza", "pasta"});
  CHECK(analyze_terms("the cat", {.keep_stopwords = true}) ==
        std::vector<std::string>{"the", "cat"});
  CHECK(analyze_terms("cat cats cat", {.unique = true}) == std::vector<std::string>{"cat"});
  CHECK(analyze_terms("one two three four", {.max_terms = 2}).size() == 2);
  CHECK(analyzed_text("Mixed языки here") == "mix язык");
}

TEST_CASE("text analyzer: invalid UTF-8 separates words and nothing breaks") {
  const std::string bad = std::string("abc\xff\xfe") + "def\xd0";
  CHECK(analyze_terms(bad) == std::vector<std::string>{"abc", "def"});
  CHECK(analyze_terms("").empty());
}

TEST_CASE("text analyzer: threads each get their own stemmers") {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        ok[t] += analyze_terms("заказы orders") == analyze_terms("заказ order") ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) CHECK(v == 500);
}
