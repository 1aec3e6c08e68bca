// The console transport: what a terminal user sees of the messages sent to them.
#include <doctest/doctest.h>

#include <string>

#include "llmassist/console/console_transport.h"
#include "support/console_chat.h"

using namespace llmassist;
using llmassist::testing::ConsoleChat;

TEST_CASE("console transport: files are printed as lines after the text, each with an id") {
  ConsoleChat chat;
  auto t = make_console_transport(chat.options());

  OutboundMessage m;
  m.chat_external_id = "console";
  m.text = "Here is the price list.";
  m.attachments = {{"/srv/files/prices-2024.pdf", "Прайс.pdf", "application/pdf", "Цены на май"},
                   {"/srv/files/terms.txt", "", "", ""}};
  m.buttons = {{{"Thanks", "thanks"}}};
  auto sent = send_sync(*t, m);
  REQUIRE(sent.ok());
  const std::string out = chat.expect("[1] Thanks\n");
  CHECK(out ==
        "bot: Here is the price list.\n"
        "bot: [file: Прайс.pdf] Цены на май\n"
        "bot: [file: terms.txt]\n"
        "  [1] Thanks\n");
  REQUIRE(sent->message_ids.size() == 3);
  CHECK(sent->message_ids[0] != sent->message_ids[1]);
  CHECK(sent->message_ids[1] != sent->message_ids[2]);

  // Files alone: no empty text line.
  OutboundMessage files_only;
  files_only.chat_external_id = "console";
  files_only.attachments = {{"report.csv", "", "text/csv", "the report"}};
  auto alone = send_sync(*t, files_only);
  REQUIRE(alone.ok());
  CHECK(chat.expect("the report\n") == "bot: [file: report.csv] the report\n");
  CHECK(alone->message_ids.size() == 1);

  // A message without files is printed as before.
  OutboundMessage hello;
  hello.chat_external_id = "console";
  hello.text = "Hello";
  auto plain = send_sync(*t, hello);
  REQUIRE(plain.ok());
  CHECK(chat.expect("Hello\n") == "bot: Hello\n");
  CHECK(plain->message_ids.size() == 1);
}
