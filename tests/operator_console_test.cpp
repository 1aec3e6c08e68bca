// The operator console against a real SQLite store: each command's effect and output, the
// escaping of stored text, the prompt loop over a pipe, and the llmassist-operator program run
// as a separate process on a database this test writes.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "programs/operator_console.h"
#include "support/moderation_fixture.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::QueueFixture;

namespace {

struct Output {
  int code = -1;
  std::string out;
  std::string err;
};

struct ConsoleFixture : QueueFixture {
  std::shared_ptr<ModerationQueue> shared_queue;

  ConsoleFixture() { shared_queue = std::move(queue); }

  OperatorConsole console(const std::string& name = "alice") {
    OperatorConsoleOptions options;
    options.operator_name = name;
    options.clock = clock;
    return OperatorConsole(store, shared_queue, options);
  }

  Output run(std::vector<std::string> args, const std::string& input = "",
             const std::string& name = "alice") {
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    Output o;
    o.code = console(name).run(args, in, out, err);
    o.out = out.str();
    o.err = err.str();
    return o;
  }

  Output interact(const std::string& input) {
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    Output o;
    o.code = console().interactive(in, out, err, false);
    o.out = out.str();
    o.err = err.str();
    return o;
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// No byte a terminal would act on: C0 controls other than newline and tab, DEL, and the UTF-8
// forms of C1 controls and bidirectional overrides.
bool terminal_clean(const std::string& text) {
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return false;
  }
  return !contains(text, "\xc2\x9b") && !contains(text, "\xe2\x80\xae");
}

}  // namespace

TEST_CASE("operator console: pending lists drafts with their chat, question and draft") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const Chat b = f.chat("2", "Boris");
  const ReplyId r1 = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  const ReplyId r2 = f.failed(b.id, "Can I pay by card?");

  auto o = f.run({"pending"});
  REQUIRE(o.code == 0);
  CHECK(o.err.empty());
  CHECK(contains(o.out, "2 replies await a decision"));
  CHECK(contains(o.out, "#" + std::to_string(r1) + " pending"));
  CHECK(contains(o.out, "Ann"));
  CHECK(contains(o.out, "Where is my order?"));
  CHECK(contains(o.out, "draft: It ships tomorrow."));
  CHECK(contains(o.out, "#" + std::to_string(r2) + " failed"));
  CHECK(contains(o.out, "every provider failed"));
  CHECK(contains(o.out, "edit " + std::to_string(r2) + " TEXT"));
  CHECK(o.out.find("#" + std::to_string(r1)) < o.out.find("#" + std::to_string(r2)));

  SUBCASE("as JSON") {
    auto j = f.run({"pending", "--json"});
    REQUIRE(j.code == 0);
    auto parsed = nlohmann::json::parse(j.out);
    REQUIRE(parsed.is_array());
    REQUIRE(parsed.size() == 2);
    CHECK(parsed[0]["reply"]["id"] == r1);
    CHECK(parsed[0]["reply"]["status"] == "pending");
    CHECK(parsed[0]["reply"]["draft_text"] == "It ships tomorrow.");
    CHECK(parsed[0]["chat"]["title"] == "Ann");
    CHECK(parsed[0]["history"][0]["text"] == "Where is my order?");
    CHECK(parsed[1]["reply"]["status"] == "failed");
  }
  SUBCASE("limits") {
    auto one = f.run({"pending", "--limit", "1", "--json"});
    REQUIRE(one.code == 0);
    CHECK(nlohmann::json::parse(one.out).size() == 1);
    CHECK(f.run({"pending", "--limit", "0"}).code == 2);
    CHECK(f.run({"pending", "--limit", "x"}).code == 2);
  }
  SUBCASE("next shows the oldest in full") {
    auto n = f.run({"next"});
    REQUIRE(n.code == 0);
    CHECK(contains(n.out, "#" + std::to_string(r1)));
    CHECK(contains(n.out, "drafted by mock"));
  }
}

TEST_CASE("operator console: an empty queue says so") {
  ConsoleFixture f;
  auto o = f.run({"pending"});
  CHECK(o.code == 0);
  CHECK(contains(o.out, "No drafts await a decision."));
  auto j = f.run({"pending", "--json"});
  CHECK(nlohmann::json::parse(j.out).empty());
}

TEST_CASE("operator console: show") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  auto o = f.run({"show", std::to_string(id)});
  REQUIRE(o.code == 0);
  CHECK(contains(o.out, "> ["));  // the question is marked in the history
  CHECK(contains(o.out, "Where is my order?"));
  CHECK(contains(o.out, "It ships tomorrow."));

  auto j = f.run({"show", std::to_string(id), "--json", "--history", "0"});
  REQUIRE(j.code == 0);
  auto parsed = nlohmann::json::parse(j.out);
  CHECK(parsed["reply"]["id"] == id);
  CHECK(parsed["history"].empty());

  auto missing = f.run({"show", "999"});
  CHECK(missing.code == 1);
  CHECK(contains(missing.err, "not_found"));
  CHECK(f.run({"show", "abc"}).code == 2);
  CHECK(f.run({"show"}).code == 2);
  CHECK(f.run({"show", "1", "2"}).code == 2);
}

TEST_CASE("operator console: show lists a draft's files and the calls that run on approval") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const ReplyId id = f.pending(a.id, "Send me the deck and book a demo", "Here it is.");
  ReplyChange carry;
  carry.from = ReplyStatus::kPending;
  carry.to = ReplyStatus::kPending;
  carry.attachments =
      std::vector<Attachment>{{"/srv/files/deck.pdf", "deck.pdf", "application/pdf", "Our deck"}};
  carry.deferred_calls =
      std::vector<DeferredToolCall>{{"call_2", "book_demo", R"({"day":"Monday"})"}};
  REQUIRE(f.store->transition_reply(id, carry).ok());
  auto o = f.run({"show", std::to_string(id)});
  REQUIRE(o.code == 0);
  CHECK(contains(o.out, "file: deck.pdf (Our deck)"));
  CHECK(contains(o.out, R"(on approval runs: book_demo {"day":"Monday"})"));
  auto j = f.run({"show", std::to_string(id), "--json"});
  REQUIRE(j.code == 0);
  const auto parsed = nlohmann::json::parse(j.out);
  REQUIRE(parsed["reply"]["attachments"].size() == 1);
  CHECK(parsed["reply"]["attachments"][0]["file_name"] == "deck.pdf");
  CHECK_FALSE(parsed["reply"]["attachments"][0].contains("path"));  // the server's business
  CHECK(parsed["reply"]["deferred_calls"][0]["tool"] == "book_demo");
}

TEST_CASE("operator console: contacts are added, noted, opted out and in") {
  ConsoleFixture f;
  auto added =
      f.run({"add-contact", "telegram", "777001", "--name", "Ирина", "--notes", "met at the fair"});
  REQUIRE_MESSAGE(added.code == 0, added.err);
  CHECK(contains(added.out, "Ирина"));
  CHECK(contains(added.out, "notes: met at the fair"));
  const Chat chat = f.store->find_chat("telegram", "777001").value();
  CHECK(chat.notes == "met at the fair");
  const std::string id = std::to_string(chat.id);

  auto noted = f.run({"note", id, "wants", "a", "demo"});
  REQUIRE_MESSAGE(noted.code == 0, noted.err);
  CHECK(f.store->get_chat(chat.id)->notes == "wants a demo");
  auto out = f.run({"opt-out", id});
  REQUIRE_MESSAGE(out.code == 0, out.err);
  CHECK(contains(out.out, "opted out"));
  CHECK(f.store->get_chat(chat.id)->opted_out_at.has_value());
  auto listed = f.run({"chats"});
  CHECK(contains(listed.out, "opted out"));
  CHECK(contains(listed.out, "notes: wants a demo"));
  auto in = f.run({"opt-in", id, "--json"});
  REQUIRE_MESSAGE(in.code == 0, in.err);
  CHECK(nlohmann::json::parse(in.out)["opted_out_at"].is_null());
  const auto events = f.store->list_audit({.chat_id = chat.id}).value();
  CHECK(std::count_if(events.begin(), events.end(), [](const AuditEvent& e) {
          return e.action == "contact" && e.actor == "operator:alice";
        }) == 4);

  // Mistakes: a usage error (2) or a failure (1), named.
  CHECK(f.run({"add-contact", "telegram", "@irina"}).code == 2);
  CHECK(f.run({"add-contact", "telegram"}).code == 2);
  CHECK(f.run({"opt-out", "99999"}).code == 1);
  CHECK(f.run({"note", "abc", "x"}).code == 2);
}

TEST_CASE("operator console: show tells what memory went into the draft") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  Context used;
  used.summary_version = 4;
  used.estimated_tokens = 812;
  used.window_messages = 6;
  used.recalled.push_back({"message", 11, 7, 2, "Я живу в Казани,\nзаказ 10452", 0.0312});
  used.recalled.push_back({"fact", 12, 0, 2, "Prefers e-mail \x1b[31m", 0.0161});
  used.passages.push_back(
      {"shipping.md", "Shipping › Russia", "Parcels to Russia take 7–10 days.", 0.5});
  used.dropped = {"2 recalled items", "3 oldest messages"};
  const ReplyId id = f.pending_with_memory(a.id, "Когда придёт заказ?", "Через неделю.", used);

  auto o = f.run({"show", std::to_string(id)});
  REQUIRE(o.code == 0);
  CHECK(terminal_clean(o.out));
  const auto draft = o.out.find("  draft: Через неделю.");
  const auto section =
      o.out.find("  memory used: summary version 4 · 6 recent message(s) · about 812 tokens\n");
  REQUIRE(draft != std::string::npos);
  REQUIRE(section != std::string::npos);
  CHECK(draft < section);
  // One recalled item a line: its newline and escape sequence shown, not acted on.
  CHECK(contains(o.out, "    recalled message (0.031): Я живу в Казани,\\nзаказ 10452\n"));
  CHECK(contains(o.out, "    recalled fact (0.016): Prefers e-mail \\x1b[31m\n"));
  CHECK(contains(o.out, "    passage: shipping.md › Shipping › Russia (0.500)\n"));
  CHECK(contains(o.out, "    dropped for the token budget: 2 recalled items, 3 oldest messages\n"));

  auto j = f.run({"show", std::to_string(id), "--json"});
  REQUIRE(j.code == 0);
  const auto parsed = nlohmann::json::parse(j.out);
  CHECK(parsed["reply"]["id"] == id);
  CHECK(parsed["memory"]["summary_version"] == 4);
  REQUIRE(parsed["memory"]["recalled"].size() == 2);
  CHECK(parsed["memory"]["recalled"][0]["text"] == "Я живу в Казани,\nзаказ 10452");
  CHECK(parsed["memory"]["passages"][0]["source"] == "shipping.md");
  CHECK(parsed["memory"]["dropped"].size() == 2);

  SUBCASE("a draft from the recent window alone") {
    const ReplyId plain = f.pending(a.id, "And the price?", "Ten euros.");
    auto shown = f.run({"show", std::to_string(plain)});
    REQUIRE(shown.code == 0);
    CHECK(contains(shown.out, "  memory used: no memory beyond the recent window\n"));
    auto as_json = f.run({"show", std::to_string(plain), "--json"});
    const auto body = nlohmann::json::parse(as_json.out);
    REQUIRE(body.contains("memory"));
    CHECK(body["memory"].is_null());
  }
  SUBCASE("rejected: the draft that follows is not shown with the old draft's memory") {
    REQUIRE(f.run({"reject", std::to_string(id), "too short"}).code == 0);
    ClaimRequest take;
    take.status = ReplyStatus::kRejected;
    take.to = ReplyStatus::kGenerating;
    take.worker = "bot:test";
    take.reply_id = id;
    REQUIRE(f.store->claim_replies(take).value().size() == 1);
    ReplyChange again;
    again.from = ReplyStatus::kGenerating;
    again.to = ReplyStatus::kPending;
    again.draft_text = "Через 7–10 дней.";
    REQUIRE(f.store->transition_reply(id, again).ok());
    auto shown = f.run({"show", std::to_string(id)});
    CHECK(contains(shown.out, "  memory used: no memory beyond the recent window\n"));
    CHECK(!contains(shown.out, "recalled"));
  }
  SUBCASE("a record that does not parse, or fields of the wrong type") {
    ReplyChange odd;
    odd.from = ReplyStatus::kPending;
    odd.to = ReplyStatus::kPending;
    odd.audit_action = "draft";
    odd.detail = R"({"summary_version": "four", "recalled": [{"text": 5}, 3], "passages": {}})";
    REQUIRE(f.store->transition_reply(id, odd).ok());
    auto lenient = f.run({"show", std::to_string(id)});
    REQUIRE(lenient.code == 0);
    CHECK(contains(lenient.out, "  memory used: no summary · 0 recent message(s)"));
    CHECK(contains(lenient.out, "    recalled item (0.000): \n"));
    CHECK(!contains(lenient.out, "passage:"));

    odd.detail = "{\"summary_version\": 4, \"recalled\": [";
    const auto stored = f.store->transition_reply(id, odd);
    REQUIRE(stored.ok());
    auto broken = f.run({"show", std::to_string(id)});
    REQUIRE(broken.code == 0);
    CHECK(contains(broken.out, "  memory used: its record (audit event #"));
    CHECK(contains(broken.out, ") cannot be read\n"));
    auto as_json = f.run({"show", std::to_string(id), "--json"});
    REQUIRE(as_json.code == 0);
    CHECK(nlohmann::json::parse(as_json.out)["memory"].is_null());
  }
}

TEST_CASE("operator console: approve, edit, reject") {
  ConsoleFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  const std::string sid = std::to_string(id);

  SUBCASE("approve") {
    auto o = f.run({"approve", sid});
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(contains(o.out, "approved"));
    CHECK(f.reply(id).status == ReplyStatus::kApproved);
    CHECK(f.audit(id)[0].actor == "operator:alice");
    auto again = f.run({"approve", sid});
    CHECK(again.code == 1);
    CHECK(contains(again.err, "approved, not awaiting a decision"));
  }
  SUBCASE("edit with words") {
    auto o = f.run({"edit", sid, "It", "ships", "today."});
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(f.reply(id).final_text == "It ships today.");
    CHECK(f.reply(id).author == "alice");
    CHECK(f.audit(id)[0].before == "It ships tomorrow.");
  }
  SUBCASE("edit from standard input") {
    auto o = f.run({"edit", sid, "-"}, "Line one.\nLine two.\n");
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(f.reply(id).final_text == "Line one.\nLine two.");
  }
  SUBCASE("edit from a file") {
    const std::string path = f.dir.file("answer.txt");
    std::ofstream(path) << "From a file.\n";
    auto o = f.run({"edit", sid, "--file", path});
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(f.reply(id).final_text == "From a file.");
    CHECK(f.run({"edit", sid, "--file", f.dir.file("missing.txt")}).code == 1);
  }
  SUBCASE("edit without text is a usage error") {
    CHECK(f.run({"edit", sid}).code == 2);
    CHECK(f.run({"edit", sid, "-"}, "  \n").code == 2);
    CHECK(f.reply(id).status == ReplyStatus::kPending);
  }
  SUBCASE("reject with a reason; --json returns the reply") {
    auto o = f.run({"reject", sid, "too", "vague", "--json"});
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(nlohmann::json::parse(o.out)["status"] == "rejected");
    CHECK(f.audit(id)[0].detail == "too vague");
  }
  SUBCASE("text after -- may start with dashes") {
    auto o = f.run({"edit", sid, "--", "--no", "worries"});
    REQUIRE_MESSAGE(o.code == 0, o.err);
    CHECK(f.reply(id).final_text == "--no worries");
  }
}

TEST_CASE("operator console: claims between two operators") {
  ConsoleFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Q", "D");
  const std::string sid = std::to_string(id);

  auto claimed = f.run({"claim", sid, "--minutes", "10"});
  REQUIRE_MESSAGE(claimed.code == 0, claimed.err);
  CHECK(contains(claimed.out, "is yours until"));
  CHECK(f.reply(id).claimed_by == "operator:alice");

  auto pending = f.run({"pending"}, "", "bob");
  CHECK(contains(pending.out, "claimed by operator:alice"));
  auto refused = f.run({"approve", sid}, "", "bob");
  CHECK(refused.code == 1);
  CHECK(contains(refused.err, "claimed by operator:alice"));
  CHECK(f.run({"release", sid}, "", "bob").code == 1);

  REQUIRE(f.run({"release", sid}).code == 0);
  CHECK(f.run({"approve", sid}, "", "bob").code == 0);
  CHECK(f.audit(id)[0].actor == "operator:bob");
  CHECK(f.run({"claim", sid, "--minutes", "0"}).code == 2);
}

TEST_CASE("operator console: handoff, reply, handback") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  f.ask(a.id, "I want a human");
  const std::string cid = std::to_string(a.id);

  auto refused = f.run({"reply", cid, "Hello"});
  CHECK(refused.code == 1);
  CHECK(contains(refused.err, "handoff " + cid));

  CHECK(contains(f.run({"handoffs"}).out, "No chat is in operator mode."));
  auto h = f.run({"handoff", cid});
  REQUIRE_MESSAGE(h.code == 0, h.err);
  CHECK(f.store->get_chat(a.id)->mode == ChatMode::kOperator);

  auto list = f.run({"handoffs"});
  CHECK(contains(list.out, "chat " + cid + " Ann"));
  CHECK(contains(list.out, "I want a human"));
  auto list_json = f.run({"handoffs", "--json"});
  CHECK(nlohmann::json::parse(list_json.out)[0]["id"] == a.id);

  auto r = f.run({"reply", cid, "Hi,", "I", "am", "Alice."});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  ReplyQuery q;
  q.chat_id = a.id;
  q.status = ReplyStatus::kApproved;
  auto replies = f.store->list_replies(q);
  REQUIRE(replies.ok());
  REQUIRE(replies->size() == 1);
  CHECK(replies->front().final_text == "Hi, I am Alice.");
  CHECK(replies->front().author == "alice");
  AuditQuery aq;
  aq.chat_id = a.id;
  auto events = f.store->list_audit(aq);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].action == "handoff_reply");
  CHECK((*events)[0].actor == "operator:alice");
  CHECK((*events)[1].action == "handoff");

  REQUIRE(f.run({"handback", cid}).code == 0);
  CHECK(f.store->get_chat(a.id)->mode == ChatMode::kBot);
  CHECK(f.run({"reply", cid, "--force", "One more thing."}).code == 0);
  CHECK(f.run({"handoff", "777"}).code == 1);
  CHECK(f.run({"reply", cid}).code == 2);
}

TEST_CASE("operator console: history, audit, stats, chats") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  f.ask(a.id, "Hello again");
  REQUIRE(f.run({"edit", std::to_string(id), "Today."}).code == 0);

  auto h = f.run({"history", std::to_string(a.id)});
  REQUIRE(h.code == 0);
  CHECK(h.out.find("Where is my order?") < h.out.find("Hello again"));  // oldest first
  auto search = f.run({"history", std::to_string(a.id), "--search", "ORDER", "--json"});
  auto found = nlohmann::json::parse(search.out);
  REQUIRE(found.size() == 1);
  CHECK(found[0]["text"] == "Where is my order?");
  CHECK(nlohmann::json::parse(
            f.run({"history", std::to_string(a.id), "--limit", "1", "--json"}).out)[0]["text"] ==
        "Hello again");

  auto audit = f.run({"audit", "--reply", std::to_string(id)});
  REQUIRE(audit.code == 0);
  CHECK(contains(audit.out, "operator:alice edit"));
  CHECK(contains(audit.out, "before: It ships tomorrow."));
  CHECK(contains(audit.out, "after: Today."));
  CHECK(nlohmann::json::parse(f.run({"audit", "--json"}).out)[0]["action"] == "edit");
  CHECK(f.run({"audit", "--reply", "x"}).code == 2);

  auto stats = f.run({"stats"});
  REQUIRE(stats.code == 0);
  CHECK(contains(stats.out, "1 edited"));
  CHECK(nlohmann::json::parse(f.run({"stats", "--json"}).out)["edited"] == 1);

  CHECK(contains(f.run({"chats", "--search", "ann"}).out, "Ann"));
}

TEST_CASE("operator console: usage errors") {
  ConsoleFixture f;
  CHECK(f.run({"frobnicate"}).code == 2);
  CHECK(f.run({"pending", "--nope"}).code == 2);
  CHECK(f.run({"approve"}).code == 2);
  CHECK(f.run({"approve", "-3"}).code == 2);
  CHECK(f.run({}).code == 2);
  auto help = f.run({"help"});
  CHECK(help.code == 0);
  CHECK(contains(help.out, "handback CHAT_ID"));
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Q", "D");
  auto bad_name = f.run({"approve", std::to_string(id)}, "", "bad\x1b[0mname");
  CHECK(bad_name.code == 1);
  CHECK(terminal_clean(bad_name.err));
}

TEST_CASE("operator console: stored text cannot drive the terminal") {
  ConsoleFixture f;
  const std::string evil =
      "\x1b[2J\x1b]0;pwned\x07 hi\r\x1b[1A \xc2\x9b"
      "31m \xe2\x80\xae"
      "gpj.exe \xff";
  const Chat a = f.chat("1", "Eve\x1b[31m");
  const ReplyId id = f.pending(a.id, evil, "draft " + evil);
  REQUIRE(f.run({"handoff", std::to_string(a.id)}).code == 0);
  REQUIRE(f.run({"reject", std::to_string(id), evil}).code == 0);

  for (const auto& args : std::vector<std::vector<std::string>>{{"show", std::to_string(id)},
                                                                {"history", std::to_string(a.id)},
                                                                {"handoffs"},
                                                                {"chats"},
                                                                {"audit"}}) {
    INFO("command: " << args[0]);
    auto o = f.run(args);
    REQUIRE(o.code == 0);
    CHECK(terminal_clean(o.out));
    CHECK(contains(o.out, "\\x1b["));
  }
  auto shown = f.run({"show", std::to_string(id)});
  CHECK(contains(shown.out, "Eve\\x1b[31m"));
  CHECK(contains(shown.out, "\\x07 hi\\r"));
  CHECK(contains(shown.out, "\\u009b31m"));
  CHECK(contains(shown.out, "\\u202egpj.exe \\xff"));

  auto j = f.run({"show", std::to_string(id), "--json"});
  CHECK(terminal_clean(j.out));
  CHECK(nlohmann::json::parse(j.out)["chat"]["title"] == "Eve\x1b[31m");
}

TEST_CASE("operator console: escape_for_terminal") {
  CHECK(escape_for_terminal("plain text") == "plain text");
  CHECK(escape_for_terminal("Привет, мир 👋") == "Привет, мир 👋");
  CHECK(escape_for_terminal("a\nb\tc") == "a\nb\tc");
  CHECK(escape_for_terminal("a\nb\tc", false) == "a\\nb\\tc");
  CHECK(escape_for_terminal("\x1b[31mred") == "\\x1b[31mred");
  CHECK(escape_for_terminal("bell\x07") == "bell\\x07");
  CHECK(escape_for_terminal("del\x7f") == "del\\x7f");
  CHECK(escape_for_terminal("\xc2\x9b"
                            "2J") == "\\u009b2J");
  CHECK(escape_for_terminal("over\r") == "over\\r");
  CHECK(escape_for_terminal("\xe2\x80\xae"
                            "abc") == "\\u202eabc");
  CHECK(escape_for_terminal("bad \xff\xfe") == "bad \\xff\\xfe");
  CHECK(escape_for_terminal("overlong \xc0\xaf") == "overlong \\xc0\\xaf");
  CHECK(escape_for_terminal("cut \xe2\x82") == "cut \\xe2\\x82");
  CHECK(escape_for_terminal(std::string("nul\0x", 5)) == "nul\\x00x");
}

TEST_CASE("operator console: the prompt loop reads commands from a pipe") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const ReplyId r1 = f.pending(a.id, "Q1", "D1");
  const Chat b = f.chat("2", "Bob");
  const ReplyId r2 = f.pending(b.id, "Q2", "D2");
  const Chat c = f.chat("3", "Cy");
  const ReplyId r3 = f.pending(c.id, "Q3", "D3");
  const ReplyId r4 = f.failed(a.id, "Q4");

  const std::string input = "approve " + std::to_string(r1) + "\n" + "edit " + std::to_string(r2) +
                            "   Hello,  \"friend\" -- really\n" + "# a comment\n\n" + "edit " +
                            std::to_string(r3) + " -\nfirst line\n\nthird line\n.\n" +
                            "frobnicate\n" + "reject " + std::to_string(r4) +
                            " provider is back\n" + "quit\n" + "approve 999\n";
  auto o = f.interact(input);
  CHECK(o.code == 1);                                    // frobnicate
  CHECK(contains(o.out, "4 replies await a decision"));  // shown on start
  CHECK(contains(o.err, "unknown command frobnicate"));
  CHECK(f.reply(r1).status == ReplyStatus::kApproved);
  CHECK(f.reply(r2).final_text == "Hello,  \"friend\" -- really");
  CHECK(f.reply(r3).final_text == "first line\n\nthird line");
  CHECK(f.reply(r4).status == ReplyStatus::kRejected);
  CHECK(f.audit(r4)[0].detail == "provider is back");
  CHECK_FALSE(contains(o.err, "999"));  // after quit

  auto quoted = f.interact("history " + std::to_string(a.id) + " --search \"q1\" --json\n");
  CHECK(quoted.code == 0);
  CHECK(contains(quoted.out, "\"Q1\""));
}

#ifdef LLMASSIST_OPERATOR_BINARY

namespace {

// Runs the program with `args`, standard input from `input`; waits for it.
Output run_program(const std::vector<std::string>& args, const std::string& dir,
                   const std::string& input = "") {
  const std::string in_path = dir + "/stdin.txt";
  const std::string out_path = dir + "/stdout.txt";
  const std::string err_path = dir + "/stderr.txt";
  std::ofstream(in_path) << input;
  std::vector<std::string> argv_storage{LLMASSIST_OPERATOR_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open(in_path.c_str(), O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  Output o;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ostringstream out;
  out << std::ifstream(out_path).rdbuf();
  o.out = out.str();
  std::ostringstream err;
  err << std::ifstream(err_path).rdbuf();
  o.err = err.str();
  return o;
}

}  // namespace

TEST_CASE("llmassist-operator: a separate process decides on the bot's database") {
  ConsoleFixture f;
  const Chat a = f.chat("1", "Ann");
  const ReplyId r1 = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  const ReplyId r2 = f.pending(a.id, "And the invoice?", "Attached.");
  const std::string db = f.dir.file("store.db");
  const std::string dir = f.dir.path().string();

  auto pending = run_program({"--db", db, "--operator", "alice", "pending", "--json"}, dir);
  REQUIRE_MESSAGE(pending.code == 0, pending.err);
  auto parsed = nlohmann::json::parse(pending.out);
  REQUIRE(parsed.size() == 2);
  CHECK(parsed[0]["reply"]["id"] == r1);
  CHECK(parsed[0]["reply"]["draft_text"] == "It ships tomorrow.");

  auto approve =
      run_program({"--db", db, "--operator", "alice", "approve", std::to_string(r1)}, dir);
  REQUIRE_MESSAGE(approve.code == 0, approve.err);
  CHECK(f.reply(r1).status == ReplyStatus::kApproved);
  CHECK(f.audit(r1)[0].actor == "operator:alice");

  auto piped = run_program({"--db", db, "--operator", "bob"}, dir,
                           "edit " + std::to_string(r2) + " See the attachment.\nquit\n");
  REQUIRE_MESSAGE(piped.code == 0, piped.err);
  CHECK(f.reply(r2).final_text == "See the attachment.");
  CHECK(f.reply(r2).author == "bob");

  auto again = run_program({"--db", db, "--operator", "alice", "approve", std::to_string(r1)}, dir);
  CHECK(again.code == 1);
  CHECK(contains(again.err, "not awaiting a decision"));
  CHECK(run_program({"--db", db, "--operator", "alice", "approve"}, dir).code == 2);
  CHECK(run_program({"--db", db, "--bogus"}, dir).code == 2);
  CHECK(run_program({"--db", f.dir.file("nothere.db"), "--operator", "a", "pending"}, dir).code ==
        1);
  auto help = run_program({"--help"}, dir);
  CHECK(help.code == 0);
  CHECK(contains(help.out, "--operator NAME"));
  CHECK(contains(help.out, "handoff CHAT_ID"));
}

#endif  // LLMASSIST_OPERATOR_BINARY
