// The ModerationQueue over a real SQLite store in a temporary folder.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/moderation_fixture.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::QueueFixture;

namespace {

std::vector<ReplyId> ids(const std::vector<PendingItem>& items) {
  std::vector<ReplyId> out;
  for (const auto& item : items) out.push_back(item.reply.id);
  return out;
}

}  // namespace

TEST_CASE("moderation queue: pending and failed replies, oldest first, with chat and history") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const Chat b = f.chat("2");
  const Chat c = f.chat("3");
  const ReplyId r1 = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  const ReplyId r2 = f.failed(b.id, "Can I pay by card?");
  f.ask(a.id, "Hello?");  // its reply stays new: not for an operator yet
  const ReplyId r4 = f.pending(c.id, "Refund?", "Yes, within 30 days.");
  REQUIRE(f.queue->approve(r4, "alice").ok());

  auto items = f.queue->list_pending({.limit = 50, .history = 10});
  REQUIRE_MESSAGE(items.ok(), items.status().to_string());
  CHECK(ids(*items) == std::vector<ReplyId>{r1, r2});
  const PendingItem& first = (*items)[0];
  CHECK(first.chat.id == a.id);
  CHECK(first.chat.title == "User 1");
  CHECK(first.reply.draft_text == "It ships tomorrow.");
  REQUIRE(first.history.size() == 2);
  CHECK(first.history[0].text == "Where is my order?");  // oldest first
  CHECK(first.history[1].text == "Hello?");
  CHECK((*items)[1].reply.status == ReplyStatus::kFailed);
  CHECK((*items)[1].history.size() == 1);

  SUBCASE("the history is the chat's last messages") {
    auto one = f.queue->list_pending({.limit = 50, .history = 1});
    REQUIRE(one.ok());
    REQUIRE((*one)[0].history.size() == 1);
    CHECK((*one)[0].history[0].text == "Hello?");
    auto none = f.queue->list_pending({.limit = 50, .history = 0});
    REQUIRE(none.ok());
    CHECK((*none)[0].history.empty());
  }
  SUBCASE("paging") {
    auto page = f.queue->list_pending({.limit = 1, .history = 0});
    REQUIRE(page.ok());
    CHECK(ids(*page) == std::vector<ReplyId>{r1});
    auto next = f.queue->list_pending({.limit = 1, .history = 0, .after_id = r1});
    REQUIRE(next.ok());
    CHECK(ids(*next) == std::vector<ReplyId>{r2});
  }
  SUBCASE("bad queries") {
    CHECK(f.queue->list_pending({.limit = 0}).status().code() == StatusCode::kInvalidArgument);
    CHECK(f.queue->list_pending({.limit = 5, .history = 101}).status().code() ==
          StatusCode::kInvalidArgument);
  }
  SUBCASE("get shows any reply with its chat") {
    auto item = f.queue->get(r4, -1);
    REQUIRE(item.ok());
    CHECK(item->reply.status == ReplyStatus::kApproved);
    CHECK(item->chat.id == c.id);
    CHECK(item->history.size() == 1);
    CHECK(f.queue->get(9999, 5).status().code() == StatusCode::kNotFound);
  }
}

TEST_CASE("moderation queue: approve, edit and reject write their audit events") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");

  SUBCASE("approve sends the draft") {
    auto r = f.queue->approve(id, "alice");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->status == ReplyStatus::kApproved);
    CHECK(r->final_text == "It ships tomorrow.");
    CHECK(r->author.empty());
    CHECK(r->decided_at.has_value());
    auto events = f.audit(id);
    REQUIRE(events.size() == 1);
    CHECK(events[0].actor == "operator:alice");
    CHECK(events[0].action == "approve");
    CHECK(events[0].chat_id == a.id);
  }
  SUBCASE("edit sends the operator's text and keeps the draft as before") {
    auto r = f.queue->edit(id, "alice", "It ships today.");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->status == ReplyStatus::kApproved);
    CHECK(r->final_text == "It ships today.");
    CHECK(r->draft_text == "It ships tomorrow.");
    CHECK(r->author == "alice");
    auto events = f.audit(id);
    REQUIRE(events.size() == 1);
    CHECK(events[0].actor == "operator:alice");
    CHECK(events[0].action == "edit");
    CHECK(events[0].before == "It ships tomorrow.");
    CHECK(events[0].after == "It ships today.");
  }
  SUBCASE("an empty edit is refused") {
    CHECK(f.queue->edit(id, "alice", "").status().code() == StatusCode::kInvalidArgument);
    CHECK(f.queue->edit(id, "alice", " \n ").status().code() == StatusCode::kInvalidArgument);
    CHECK(f.reply(id).status == ReplyStatus::kPending);
  }
  SUBCASE("reject asks for a new draft with the reason in the audit log") {
    auto r = f.queue->reject(id, "alice", "too vague");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->status == ReplyStatus::kRejected);
    auto events = f.audit(id);
    REQUIRE(events.size() == 1);
    CHECK(events[0].action == "reject");
    CHECK(events[0].detail == "too vague");
    CHECK(events[0].before == "It ships tomorrow.");
  }
}

TEST_CASE("moderation queue: a claim keeps other operators out until it is released or expires") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");

  auto claimed = f.queue->claim(id, "alice", 2min);
  REQUIRE_MESSAGE(claimed.ok(), claimed.status().to_string());
  CHECK(claimed->claimed_by == "operator:alice");
  CHECK(claimed->status == ReplyStatus::kPending);

  for (const auto& status :
       {f.queue->approve(id, "bob").status(), f.queue->edit(id, "bob", "Soon.").status(),
        f.queue->reject(id, "bob", "no").status(), f.queue->claim(id, "bob", 1min).status(),
        f.queue->release(id, "bob")}) {
    CHECK(status.code() == StatusCode::kAborted);
    CHECK(status.message().find("operator:alice") != std::string::npos);
  }
  CHECK(f.reply(id).status == ReplyStatus::kPending);
  CHECK(f.audit(id).empty());

  SUBCASE("the holder renews the claim") {
    f.clock->advance(1min);
    auto renewed = f.queue->claim(id, "alice", 2min);
    REQUIRE(renewed.ok());
    CHECK(*renewed->lease_until > *claimed->lease_until);
  }
  SUBCASE("after the lease runs out another operator may act") {
    f.clock->advance(2min + 1s);
    auto r = f.queue->approve(id, "bob");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->claimed_by.empty());
    CHECK(f.audit(id)[0].actor == "operator:bob");
  }
  SUBCASE("after a release another operator may act") {
    REQUIRE(f.queue->release(id, "alice").ok());
    auto r = f.queue->reject(id, "bob", "wrong");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  }
  SUBCASE("the holder decides and the decision releases the claim") {
    auto r = f.queue->edit(id, "alice", "Today.");
    REQUIRE(r.ok());
    CHECK(r->claimed_by.empty());
  }
  SUBCASE("a lease of zero takes the default") {
    REQUIRE(f.queue->release(id, "alice").ok());
    auto r = f.queue->claim(id, "bob", 0ms);
    REQUIRE(r.ok());
    CHECK(*r->lease_until == f.clock->now() + 5min);
  }
}

TEST_CASE("moderation queue: two operators approving at once, exactly one succeeds") {
  QueueFixture f;
  const Chat a = f.chat("1");
  for (int round = 0; round < 8; ++round) {
    const ReplyId id = f.pending(a.id, "Question " + std::to_string(round), "Draft");
    std::atomic<int> ok{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (const char* name : {"alice", "bob"}) {
      threads.emplace_back([&, name] {
        auto r = f.queue->approve(id, name);
        if (r.ok()) {
          ++ok;
        } else if (r.status().code() == StatusCode::kAborted ||
                   r.status().code() == StatusCode::kFailedPrecondition) {
          ++refused;
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(ok == 1);
    CHECK(refused == 1);
    CHECK(f.audit(id).size() == 1);
    REQUIRE(f.queue->approve(id, "carol").status().code() == StatusCode::kFailedPrecondition);
    // Send it, so that the chat's next question is not kept behind it.
    ReplyChange sent;
    sent.from = ReplyStatus::kApproved;
    sent.to = ReplyStatus::kSent;
    REQUIRE(f.store->transition_reply(id, sent).ok());
  }
}

TEST_CASE("moderation queue: decisions on replies not awaiting one are refused") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Where is my order?", "It ships tomorrow.");
  REQUIRE(f.queue->approve(id, "alice").ok());

  auto approve = f.queue->approve(id, "bob");
  CHECK(approve.status().code() == StatusCode::kFailedPrecondition);
  CHECK(approve.status().message().find("approved") != std::string::npos);
  CHECK(f.queue->edit(id, "bob", "x").status().code() == StatusCode::kFailedPrecondition);
  CHECK(f.queue->reject(id, "bob", "").status().code() == StatusCode::kFailedPrecondition);
  CHECK(f.queue->claim(id, "bob", 1min).status().code() == StatusCode::kFailedPrecondition);

  ReplyChange sent;
  sent.from = ReplyStatus::kApproved;
  sent.to = ReplyStatus::kSent;
  REQUIRE(f.store->transition_reply(id, sent).ok());
  auto again = f.queue->edit(id, "bob", "late");
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);
  CHECK(again.status().message().find("sent") != std::string::npos);

  const ReplyId fresh = f.ask(a.id, "More?");
  CHECK(f.queue->approve(fresh, "bob").status().code() == StatusCode::kFailedPrecondition);
  CHECK(f.queue->approve(424242, "bob").status().code() == StatusCode::kNotFound);
  CHECK(f.audit(id).size() == 1);
}

TEST_CASE("moderation queue: operator names") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.pending(a.id, "Q", "D");
  for (const std::string& bad :
       {std::string(), std::string(65, 'a'), std::string("ali\x1b[31mce"), std::string("bob\n"),
        std::string(" bob"), std::string("bob "), std::string("b\xff"),
        std::string("b\xc2\x9b"
                    "1m"),
        std::string("evil\xe2\x80\xae")}) {
    INFO("name: " << bad);
    CHECK(check_operator_name(bad).code() == StatusCode::kInvalidArgument);
    CHECK(f.queue->approve(id, bad).status().code() == StatusCode::kInvalidArgument);
    CHECK(f.queue->claim(id, bad, 1min).status().code() == StatusCode::kInvalidArgument);
    CHECK(f.queue->release(id, bad).code() == StatusCode::kInvalidArgument);
  }
  CHECK(check_operator_name(std::string(64, 'a')).ok());
  CHECK(check_operator_name("Анна Петрова").ok());
  CHECK(check_operator_name("alice@example.com").ok());
  CHECK(f.reply(id).status == ReplyStatus::kPending);
  CHECK(f.queue->approve(id, "Анна").ok());
  CHECK(f.audit(id)[0].actor == "operator:Анна");
}

TEST_CASE("moderation queue: failed replies are answered by hand or sent back for a new draft") {
  QueueFixture f;
  const Chat a = f.chat("1");
  const ReplyId id = f.failed(a.id, "Can I pay by card?");

  SUBCASE("edit answers by hand") {
    auto r = f.queue->edit(id, "alice", "Yes, all major cards.");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->status == ReplyStatus::kApproved);
    CHECK(r->final_text == "Yes, all major cards.");
    CHECK(r->author == "alice");
    auto events = f.audit(id);
    REQUIRE(events.size() == 1);
    CHECK(events[0].action == "edit");
    CHECK(events[0].before.empty());
    CHECK(events[0].after == "Yes, all major cards.");
  }
  SUBCASE("approve has nothing to send") {
    auto r = f.queue->approve(id, "alice");
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find("edit") != std::string::npos);
  }
  SUBCASE("reject moves it to rejected, where the pipeline regenerates it") {
    auto r = f.queue->reject(id, "alice", "try again, the provider is back");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->status == ReplyStatus::kRejected);
    ClaimRequest q;
    q.status = ReplyStatus::kRejected;
    q.to = ReplyStatus::kGenerating;
    q.worker = "bot:test";
    auto taken = f.store->claim_replies(q);
    REQUIRE(taken.ok());
    REQUIRE(taken->size() == 1);
    CHECK(taken->front().id == id);
  }
  SUBCASE("a failed delivery is approved again as it was") {
    const ReplyId sent_id = f.pending(a.id, "Hours?", "9 to 5.");
    REQUIRE(f.queue->edit(sent_id, "alice", "9 to 6.").ok());
    ReplyChange fail;
    fail.from = ReplyStatus::kApproved;
    fail.to = ReplyStatus::kFailed;
    fail.error = "blocked";
    REQUIRE(f.store->transition_reply(sent_id, fail).ok());
    auto r = f.queue->approve(sent_id, "bob");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->final_text == "9 to 6.");
    CHECK(r->author == "alice");
  }
}
