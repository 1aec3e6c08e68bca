// Reading the summariser's answer: the summary, then the "Facts:" list.
#include "memory/summary_text.h"

#include <doctest/doctest.h>

#include <string>

using llmassist::detail::parse_summary_answer;

TEST_CASE("summary answer: the summary and its facts, English") {
  const auto a = parse_summary_answer(
      "  The user, Ann, asks about order 4411.\n\nFacts:\n- Name: Ann\n- Order: 4411\n\n");
  CHECK(a.summary == "The user, Ann, asks about order 4411.");
  REQUIRE(a.facts.size() == 2);
  CHECK(a.facts[0] == "Name: Ann");
  CHECK(a.facts[1] == "Order: 4411");
}

TEST_CASE("summary answer: Russian label, bold, numbered and bulleted facts") {
  const auto a = parse_summary_answer(
      "Пользователь спрашивает о доставке.\n**Факты:**\n1. Город: Казань\n2) Заказ 77\n• любит "
      "e-mail\n");
  CHECK(a.summary == "Пользователь спрашивает о доставке.");
  REQUIRE(a.facts.size() == 3);
  CHECK(a.facts[0] == "Город: Казань");
  CHECK(a.facts[1] == "Заказ 77");
  CHECK(a.facts[2] == "любит e-mail");
}

TEST_CASE("summary answer: no facts, none, and no list at all") {
  CHECK(parse_summary_answer("Short.\nFacts: none").facts.empty());
  CHECK(parse_summary_answer("Short.\nФакты:\n- нет\n").facts.empty());
  const auto plain = parse_summary_answer("Only a summary, no list.");
  CHECK(plain.summary == "Only a summary, no list.");
  CHECK(plain.facts.empty());
  CHECK(parse_summary_answer("").summary.empty());
}

TEST_CASE("summary answer: facts are bounded in number and characters") {
  std::string text = "S\nFacts:\n";
  std::string long_fact;
  for (int i = 0; i < 400; ++i) long_fact += "я";
  for (int i = 0; i < 30; ++i) text += "- " + long_fact + "\n";
  const auto a = parse_summary_answer(text);
  CHECK(a.facts.size() == 20);
  CHECK(a.facts[0].size() == 600);  // 300 Cyrillic characters, two bytes each
}
