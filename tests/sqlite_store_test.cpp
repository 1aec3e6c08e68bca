// The SQLite MessageStore on real database files in temporary folders.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/testing/message_store_conformance.h"
#include "sqlite/sqlite_db.h"
#include "sqlite/sqlite_schema.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::ManualClock;
using llmassist::testing::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::unique_ptr<MessageStore> store;

  Fixture() { store = open(); }

  std::unique_ptr<MessageStore> open() {
    SqliteStoreOptions options;
    options.path = dir.file("store.db");
    options.clock = clock;
    options.logger = null_logger();
    options.sync = SqliteSync::kNormal;
    auto opened = open_sqlite_store(options);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    return std::move(opened).value();
  }

  Chat chat(const std::string& external = "1001") {
    auto c = store->upsert_chat({"telegram", external, "Ann", "ann"});
    REQUIRE(c.ok());
    return *c;
  }

  InboundResult ask(ChatId chat_id, const std::string& text, const std::string& key = "") {
    InboundMessage m;
    m.chat_id = chat_id;
    m.text = text;
    m.author = "Ann";
    m.dedup_key = key;
    auto r = append_inbound(*store, m);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    return *r;
  }

  Reply claim_generating(ReplyId id) {
    ClaimRequest q;
    q.status = ReplyStatus::kNew;
    q.to = ReplyStatus::kGenerating;
    q.worker = "worker-1";
    q.reply_id = id;
    auto r = store->claim_replies(q);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    REQUIRE(r->size() == 1);
    return r->front();
  }

  Reply move(ReplyId id, ReplyStatus from, ReplyStatus to) {
    ReplyChange ch;
    ch.from = from;
    ch.to = to;
    auto r = store->transition_reply(id, ch);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    return *r;
  }

  Reply draft(ReplyId id, const std::string& text, ReplyStatus to = ReplyStatus::kPending) {
    ReplyChange ch;
    ch.from = ReplyStatus::kGenerating;
    ch.to = to;
    ch.draft_text = text;
    ch.provider = "kb";
    ch.providers_tried = 1;
    auto r = store->transition_reply(id, ch);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    return *r;
  }
};

}  // namespace

TEST_CASE("sqlite store: chats are upserted by channel and external id") {
  Fixture f;
  auto a = f.chat("42");
  CHECK(a.id > 0);
  CHECK(a.title == "Ann");
  CHECK(a.mode == ChatMode::kBot);
  f.clock->advance(1s);
  auto again = f.store->upsert_chat({"telegram", "42", "Ann B.", ""});
  REQUIRE(again.ok());
  CHECK(again->id == a.id);
  CHECK(again->title == "Ann B.");
  CHECK(again->username == "ann");  // an empty field does not erase what we knew
  CHECK(again->updated_at > a.updated_at);
  auto other = f.store->upsert_chat({"console", "42", "", ""});
  REQUIRE(other.ok());
  CHECK(other->id != a.id);
  CHECK(f.store->find_chat("telegram", "42")->id == a.id);
  CHECK(f.store->find_chat("telegram", "43").status().code() == StatusCode::kNotFound);
  CHECK(f.store->get_chat(9999).status().code() == StatusCode::kNotFound);
  CHECK(f.store->upsert_chat({"", "1", "", ""}).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: inbound messages are idempotent on the dedup key") {
  Fixture f;
  auto chat = f.chat();
  auto first = f.ask(chat.id, "Where is my order?", "telegram:100");
  CHECK_FALSE(first.duplicate);
  CHECK(first.reply_id > 0);
  CHECK(first.message.role == Role::kUser);
  CHECK(first.message.session_id > 0);
  auto second = f.ask(chat.id, "Where is my order?", "telegram:100");
  CHECK(second.duplicate);
  CHECK(second.message.id == first.message.id);
  CHECK(second.reply_id == first.reply_id);
  auto history = f.store->chat_history(chat.id, {});
  REQUIRE(history.ok());
  CHECK(history->size() == 1);
  auto replies = f.store->list_replies({});
  REQUIRE(replies.ok());
  CHECK(replies->size() == 1);
  // Messages without a key are never deduplicated.
  f.ask(chat.id, "hi");
  f.ask(chat.id, "hi");
  CHECK(f.store->chat_history(chat.id, {})->size() == 3);
}

TEST_CASE("sqlite store: a batch of inbound messages commits together, duplicates inside it too") {
  Fixture f;
  auto chat = f.chat();
  std::vector<InboundMessage> batch(3);
  for (int i = 0; i < 3; ++i) {
    batch[i].chat_id = chat.id;
    batch[i].text = "q" + std::to_string(i);
    batch[i].dedup_key = "telegram:" + std::to_string(i % 2);  // 0, 1, 0
  }
  batch[1].open_reply = false;
  auto results = f.store->append_inbound(batch);
  REQUIRE(results.ok());
  REQUIRE(results->size() == 3);
  CHECK_FALSE((*results)[0].duplicate);
  CHECK((*results)[1].reply_id == 0);
  CHECK((*results)[2].duplicate);
  CHECK((*results)[2].message.id == (*results)[0].message.id);
  // One bad message fails the whole batch and stores nothing.
  batch[0].dedup_key = "telegram:7";
  batch[2].chat_id = 987654;
  batch[2].dedup_key = "telegram:8";
  auto failed = f.store->append_inbound(batch);
  CHECK(failed.status().code() == StatusCode::kNotFound);
  CHECK(f.store->chat_history(chat.id, {})->size() == 2);
}

TEST_CASE("sqlite store: bad inbound input gets a clear error") {
  Fixture f;
  auto chat = f.chat();
  InboundMessage m;
  m.text = "no chat";
  auto r = append_inbound(*f.store, m);
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  m.chat_id = chat.id;
  m.text = std::string((1 << 20) + 1, 'x');
  r = append_inbound(*f.store, m);
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK(r.status().message().find("bytes") != std::string::npos);
  // Text with quotes, NUL-free binary junk and SQL is stored verbatim: parameters are bound.
  m.text = "'); DROP TABLE messages; -- \xF0\x9F\x98\x80";
  r = append_inbound(*f.store, m);
  REQUIRE(r.ok());
  CHECK(f.store->get_message(r->message.id)->text == m.text);
}

TEST_CASE("sqlite store: the reply lifecycle in review policy, with audit events") {
  Fixture f;
  auto chat = f.chat();
  auto in = f.ask(chat.id, "How do I reset my password?");
  auto reply = f.claim_generating(in.reply_id);
  CHECK(reply.status == ReplyStatus::kGenerating);
  CHECK(reply.claimed_by == "worker-1");
  CHECK(reply.generation_attempts == 1);
  f.clock->advance(2s);
  reply = f.draft(reply.id, "Use the reset link.");
  CHECK(reply.status == ReplyStatus::kPending);
  CHECK(reply.claimed_by.empty());
  CHECK(reply.generated_at.has_value());
  f.clock->advance(30s);

  // reject: back for a new draft, the reason in the audit log
  ReplyChange reject;
  reject.from = ReplyStatus::kPending;
  reject.to = ReplyStatus::kRejected;
  reject.actor = "operator:alice";
  reject.audit_action = "reject";
  reject.detail = "too vague";
  reply = *f.store->transition_reply(reply.id, reject);
  CHECK(reply.status == ReplyStatus::kRejected);

  ClaimRequest regen;
  regen.status = ReplyStatus::kRejected;
  regen.to = ReplyStatus::kGenerating;
  regen.worker = "worker-2";
  auto claimed = f.store->claim_replies(regen);
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().generation_attempts == 2);
  reply = f.draft(reply.id, "Open Settings > Security > Reset password.");

  // edit: the operator's text replaces the draft; the draft stays in the audit log
  ReplyChange edit;
  edit.from = ReplyStatus::kPending;
  edit.to = ReplyStatus::kApproved;
  edit.final_text = "Open Settings > Security > Reset password, then check your mail.";
  edit.author = "alice";
  edit.actor = "operator:alice";
  edit.audit_action = "edit";
  f.clock->advance(10s);
  reply = *f.store->transition_reply(reply.id, edit);
  CHECK(reply.status == ReplyStatus::kApproved);
  CHECK(reply.final_text == *edit.final_text);
  CHECK(reply.draft_text == "Open Settings > Security > Reset password.");
  REQUIRE(reply.decided_at.has_value());

  auto outbox = f.store->list_replies({.status = ReplyStatus::kApproved});
  REQUIRE(outbox.ok());
  REQUIRE(outbox->size() == 1);

  ReplyChange sent;
  sent.from = ReplyStatus::kApproved;
  sent.to = ReplyStatus::kSent;
  sent.transport_message_id = "555";
  reply = *f.store->transition_reply(reply.id, sent);
  CHECK(reply.status == ReplyStatus::kSent);
  CHECK(reply.transport_message_id == "555");
  CHECK(f.store->list_replies({.status = ReplyStatus::kApproved})->empty());

  // The answer joined the log, as the operator's words since an operator wrote them.
  auto log = f.store->recent_messages(in.message.session_id, 10);
  REQUIRE(log.ok());
  REQUIRE(log->size() == 2);
  CHECK(log->back().role == Role::kOperator);
  CHECK(log->back().text == *edit.final_text);
  CHECK(log->back().reply_id == reply.id);

  auto audit = f.store->list_audit({.reply_id = reply.id});
  REQUIRE(audit.ok());
  REQUIRE(audit->size() == 2);
  CHECK(audit->at(0).action == "edit");  // newest first
  CHECK(audit->at(0).actor == "operator:alice");
  CHECK(audit->at(0).before == "Open Settings > Security > Reset password.");
  CHECK(audit->at(0).after == *edit.final_text);
  CHECK(audit->at(1).action == "reject");
  CHECK(audit->at(1).detail == "too vague");
  CHECK(audit->at(1).before == "Use the reset link.");
}

TEST_CASE("sqlite store: auto policy approves the draft itself, sent answers are assistant's") {
  Fixture f;
  auto chat = f.chat();
  auto in = f.ask(chat.id, "Opening hours?");
  f.claim_generating(in.reply_id);
  auto reply = f.draft(in.reply_id, "9 to 5.", ReplyStatus::kApproved);
  CHECK(reply.final_text == "9 to 5.");
  CHECK_FALSE(reply.decided_at.has_value());  // nobody waited for an operator
  reply = f.move(reply.id, ReplyStatus::kApproved, ReplyStatus::kSent);
  auto log = f.store->recent_messages(in.message.session_id, 5);
  CHECK(log->back().role == Role::kAssistant);
  CHECK(log->back().text == "9 to 5.");
}

TEST_CASE("sqlite store: illegal transitions and stale expectations are refused") {
  Fixture f;
  auto chat = f.chat();
  auto in = f.ask(chat.id, "q");
  ReplyChange ch;
  ch.from = ReplyStatus::kNew;
  ch.to = ReplyStatus::kSent;
  auto r = f.store->transition_reply(in.reply_id, ch);
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  ch.from = ReplyStatus::kPending;  // legal pair, wrong current status
  ch.to = ReplyStatus::kApproved;
  r = f.store->transition_reply(in.reply_id, ch);
  CHECK(r.status().code() == StatusCode::kAborted);
  CHECK(r.status().message().find("is new") != std::string::npos);
  auto current = f.store->get_reply(in.reply_id);
  ch.from = ReplyStatus::kNew;
  ch.to = ReplyStatus::kGenerating;
  ch.expected_version = current->version + 1;
  r = f.store->transition_reply(in.reply_id, ch);
  CHECK(r.status().code() == StatusCode::kAborted);
  ch.expected_version = current->version;
  r = f.store->transition_reply(in.reply_id, ch);
  REQUIRE(r.ok());
  CHECK(r->version == current->version + 1);
  CHECK(f.store->transition_reply(424242, ch).status().code() == StatusCode::kNotFound);
  // sent and cancelled are final
  f.draft(in.reply_id, "a", ReplyStatus::kApproved);
  f.move(in.reply_id, ReplyStatus::kApproved, ReplyStatus::kSent);
  for (auto to : {ReplyStatus::kApproved, ReplyStatus::kGenerating, ReplyStatus::kCancelled}) {
    ReplyChange again;
    again.from = ReplyStatus::kSent;
    again.to = to;
    CHECK(f.store->transition_reply(in.reply_id, again).status().code() ==
          StatusCode::kFailedPrecondition);
  }
  // nothing to send: an approved reply must have text
  auto empty = f.ask(chat.id, "q2");
  f.claim_generating(empty.reply_id);
  f.draft(empty.reply_id, "", ReplyStatus::kApproved);
  ReplyChange send;
  send.from = ReplyStatus::kApproved;
  send.to = ReplyStatus::kSent;
  CHECK(f.store->transition_reply(empty.reply_id, send).status().code() ==
        StatusCode::kFailedPrecondition);
}

TEST_CASE("sqlite store: claims are leases, an operator's claim keeps others out") {
  Fixture f;
  auto chat = f.chat();
  auto in = f.ask(chat.id, "q");
  f.claim_generating(in.reply_id);
  f.draft(in.reply_id, "draft");
  ClaimRequest alice;
  alice.status = ReplyStatus::kPending;
  alice.worker = "operator:alice";
  alice.reply_id = in.reply_id;
  alice.lease = 60s;
  auto a = f.store->claim_replies(alice);
  REQUIRE(a.ok());
  CHECK(a->front().status == ReplyStatus::kPending);
  CHECK(a->front().claimed_by == "operator:alice");

  ClaimRequest bob = alice;
  bob.worker = "operator:bob";
  CHECK(f.store->claim_replies(bob).status().code() == StatusCode::kAborted);
  // bob cannot decide behind alice's back either
  ReplyChange approve;
  approve.from = ReplyStatus::kPending;
  approve.to = ReplyStatus::kApproved;
  approve.actor = "operator:bob";
  approve.audit_action = "approve";
  CHECK(f.store->transition_reply(in.reply_id, approve).status().code() == StatusCode::kAborted);
  CHECK(f.store->release_claim(in.reply_id, "operator:bob").code() == StatusCode::kAborted);
  // after the lease runs out, bob may take it
  f.clock->advance(61s);
  auto b = f.store->claim_replies(bob);
  REQUIRE(b.ok());
  CHECK(b->front().claimed_by == "operator:bob");
  CHECK(f.store->release_claim(in.reply_id, "operator:bob").ok());
  CHECK(f.store->get_reply(in.reply_id)->claimed_by.empty());
  // a claim of the wrong status says what the status is
  ClaimRequest wrong = alice;
  wrong.status = ReplyStatus::kApproved;
  auto w = f.store->claim_replies(wrong);
  CHECK(w.status().code() == StatusCode::kFailedPrecondition);
  CHECK(w.status().message().find("pending") != std::string::npos);
}

TEST_CASE("sqlite store: a generating reply whose worker died is taken over after its lease") {
  Fixture f;
  auto chat = f.chat();
  auto in = f.ask(chat.id, "q");
  ClaimRequest take;
  take.status = ReplyStatus::kNew;
  take.to = ReplyStatus::kGenerating;
  take.worker = "bot-a";
  take.lease = 30s;
  REQUIRE(f.store->claim_replies(take)->size() == 1);
  ClaimRequest recover;
  recover.status = ReplyStatus::kGenerating;
  recover.worker = "bot-b";
  CHECK(f.store->claim_replies(recover)->empty());  // bot-a is still on it
  f.clock->advance(31s);
  auto taken = f.store->claim_replies(recover);
  REQUIRE(taken->size() == 1);
  CHECK(taken->front().claimed_by == "bot-b");
  CHECK(taken->front().generation_attempts == 2);
}

TEST_CASE("sqlite store: claims respect retry backoff and per-chat order") {
  Fixture f;
  auto c1 = f.chat("1");
  auto c2 = f.chat("2");
  auto q1 = f.ask(c1.id, "first");
  auto q2 = f.ask(c1.id, "second");
  auto q3 = f.ask(c2.id, "other chat");
  ClaimRequest heads;
  heads.status = ReplyStatus::kNew;
  heads.to = ReplyStatus::kGenerating;
  heads.worker = "w";
  heads.limit = 10;
  heads.head_of_chat_only = true;
  auto got = f.store->claim_replies(heads);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  std::set<ReplyId> ids;
  for (auto& r : *got) ids.insert(r.id);
  CHECK(ids == std::set<ReplyId>{q1.reply_id, q3.reply_id});  // q2 waits behind q1
  CHECK(f.store->claim_replies(heads)->empty());
  f.draft(q1.reply_id, "a1", ReplyStatus::kApproved);
  f.move(q1.reply_id, ReplyStatus::kApproved, ReplyStatus::kSent);
  got = f.store->claim_replies(heads);
  REQUIRE(got->size() == 1);
  CHECK(got->front().id == q2.reply_id);

  // an approved reply scheduled for later is not due yet
  f.draft(q3.reply_id, "a3", ReplyStatus::kApproved);
  ReplyChange later;
  later.from = ReplyStatus::kApproved;
  later.to = ReplyStatus::kApproved;
  later.count_send = true;
  later.error = "telegram: 502";
  later.next_attempt_at = f.clock->now() + 5s;
  auto r = f.store->transition_reply(q3.reply_id, later);
  REQUIRE(r.ok());
  CHECK(r->send_attempts == 1);
  ClaimRequest outbox;
  outbox.status = ReplyStatus::kApproved;
  outbox.worker = "dispatcher";
  outbox.limit = 10;
  CHECK(f.store->claim_replies(outbox)->empty());
  f.clock->advance(6s);
  CHECK(f.store->claim_replies(outbox)->size() == 1);
}

TEST_CASE("sqlite store: past_approved lets a chat's next draft begin while an answer waits") {
  Fixture f;
  auto c = f.chat("1");
  auto q1 = f.ask(c.id, "first");
  auto q2 = f.ask(c.id, "second");
  f.claim_generating(q1.reply_id);
  f.draft(q1.reply_id, "a1", ReplyStatus::kApproved);  // on its way, not sent yet
  ClaimRequest next;
  next.status = ReplyStatus::kNew;
  next.to = ReplyStatus::kGenerating;
  next.worker = "w";
  next.limit = 10;
  next.head_of_chat_only = true;
  CHECK(f.store->claim_replies(next)->empty());  // the answer holds the chat by default
  next.past_approved = true;
  auto got = f.store->claim_replies(next);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  REQUIRE(got->size() == 1);
  CHECK(got->front().id == q2.reply_id);
  // The outbox still sends in order: the second answer waits behind the first.
  f.draft(q2.reply_id, "a2", ReplyStatus::kApproved);
  ClaimRequest outbox;
  outbox.status = ReplyStatus::kApproved;
  outbox.worker = "dispatcher";
  outbox.limit = 10;
  outbox.head_of_chat_only = true;
  got = f.store->claim_replies(outbox);
  REQUIRE(got->size() == 1);
  CHECK(got->front().id == q1.reply_id);
  // A draft waiting for an operator holds the chat even past approved answers.
  auto q3 = f.ask(c.id, "third");
  f.ask(c.id, "fourth");  // would be next, but for the pending draft
  f.claim_generating(q3.reply_id);
  f.draft(q3.reply_id, "a3", ReplyStatus::kPending);
  CHECK(f.store->claim_replies(next)->empty());
}

TEST_CASE("sqlite store: transition_and_claim changes a reply and claims the chat's next step") {
  Fixture f;
  auto c = f.chat("1");
  auto other = f.chat("2");
  auto q1 = f.ask(c.id, "first");
  auto q2 = f.ask(c.id, "second");
  auto q3 = f.ask(other.id, "elsewhere");
  f.claim_generating(q1.reply_id);
  ReplyChange approve;
  approve.from = ReplyStatus::kGenerating;
  approve.to = ReplyStatus::kApproved;
  approve.draft_text = "a1";
  ClaimRequest send;
  send.status = ReplyStatus::kApproved;
  send.worker = "w";
  send.head_of_chat_only = true;
  send.chat_ids = {c.id};
  ClaimRequest draft;
  draft.status = ReplyStatus::kNew;
  draft.to = ReplyStatus::kGenerating;
  draft.worker = "w";
  draft.head_of_chat_only = true;
  draft.past_approved = true;
  draft.chat_ids = {c.id};
  const std::vector<ClaimRequest> claims = {send, draft};
  auto done = f.store->transition_and_claim(q1.reply_id, approve, claims);
  REQUIRE_MESSAGE(done.ok(), done.status().to_string());
  CHECK(done->reply.id == q1.reply_id);
  CHECK(done->reply.final_text == "a1");
  CHECK(done->chat.id == c.id);  // the chat, for whoever sends what was claimed
  CHECK(done->chat.external_id == "1");
  REQUIRE(done->claimed.size() == 2);
  REQUIRE(done->claimed[0].size() == 1);
  CHECK(done->claimed[0][0].id == q1.reply_id);  // the answer, claimed for sending
  CHECK(done->claimed[0][0].claimed_by == "w");
  REQUIRE(done->claimed[1].size() == 1);
  CHECK(done->claimed[1][0].id == q2.reply_id);  // the next question, claimed for drafting
  CHECK(done->claimed[1][0].status == ReplyStatus::kGenerating);
  CHECK(f.store->get_reply(q3.reply_id)->status == ReplyStatus::kNew);  // other chats untouched

  // A change that fails claims nothing: the reply is no longer generating.
  auto again = f.store->transition_and_claim(q1.reply_id, approve, claims);
  CHECK(again.status().code() == StatusCode::kAborted);
  // A bad claim is refused before anything is written.
  ReplyChange sent;
  sent.from = ReplyStatus::kApproved;
  sent.to = ReplyStatus::kSent;
  ClaimRequest nameless = send;
  nameless.worker.clear();
  auto refused =
      f.store->transition_and_claim(q1.reply_id, sent, std::vector<ClaimRequest>{nameless});
  CHECK(refused.status().code() == StatusCode::kInvalidArgument);
  CHECK(f.store->get_reply(q1.reply_id)->status == ReplyStatus::kApproved);
  // No claims: a plain change.
  auto plain = f.store->transition_and_claim(q1.reply_id, sent, {});
  REQUIRE(plain.ok());
  CHECK(plain->reply.status == ReplyStatus::kSent);
  CHECK(plain->claimed.empty());
}

// Every field of two replies, compared one by one (a failing field is named in the output).
void check_same_reply(const Reply& got, const Reply& stored) {
  CHECK(got.id == stored.id);
  CHECK(got.chat_id == stored.chat_id);
  CHECK(got.session_id == stored.session_id);
  CHECK(got.question_id == stored.question_id);
  CHECK(got.status == stored.status);
  CHECK(got.draft_text == stored.draft_text);
  CHECK(got.final_text == stored.final_text);
  CHECK(got.author == stored.author);
  CHECK(got.provider == stored.provider);
  CHECK(got.error == stored.error);
  CHECK(got.generation_attempts == stored.generation_attempts);
  CHECK(got.send_attempts == stored.send_attempts);
  CHECK(got.version == stored.version);
  CHECK(got.claimed_by == stored.claimed_by);
  CHECK(got.lease_until == stored.lease_until);
  CHECK(got.next_attempt_at == stored.next_attempt_at);
  CHECK(got.transport_message_id == stored.transport_message_id);
  CHECK(got.created_at == stored.created_at);
  CHECK(got.updated_at == stored.updated_at);
  CHECK(got.generated_at == stored.generated_at);
  CHECK(got.decided_at == stored.decided_at);
  CHECK(got.sent_at == stored.sent_at);
}

TEST_CASE("sqlite store: a change or a claim returns the reply exactly as stored") {
  Fixture f;
  auto c = f.chat();
  auto q = f.ask(c.id, "question");
  // What a claim or a change returns, against the row as stored then.
  auto claims_as_stored = [&](const ClaimRequest& request) {
    auto claimed = f.store->claim_replies(request);
    REQUIRE(claimed.ok());
    REQUIRE(claimed->size() == 1);
    check_same_reply(claimed->front(), f.store->get_reply(q.reply_id).value());
  };
  auto changes_as_stored = [&](const ReplyChange& change) {
    auto changed = f.store->transition_reply(q.reply_id, change);
    REQUIRE_MESSAGE(changed.ok(), changed.status().to_string());
    check_same_reply(*changed, f.store->get_reply(q.reply_id).value());
  };
  f.clock->advance(1500ms);
  ClaimRequest take;
  take.status = ReplyStatus::kNew;
  take.to = ReplyStatus::kGenerating;
  take.worker = "w";
  take.lease = 90s;
  take.chat_ids = {c.id};
  take.head_of_chat_only = true;
  claims_as_stored(take);

  f.clock->advance(1234ms);
  ReplyChange drafted;
  drafted.from = ReplyStatus::kGenerating;
  drafted.to = ReplyStatus::kApproved;
  drafted.draft_text = "answer";
  drafted.provider = "p";
  drafted.providers_tried = 1;
  drafted.actor = "w";
  changes_as_stored(drafted);

  ClaimRequest send;
  send.status = ReplyStatus::kApproved;
  send.worker = "outbox";
  send.reply_id = q.reply_id;
  claims_as_stored(send);

  f.clock->advance(7ms);
  ReplyChange retry;
  retry.from = ReplyStatus::kApproved;
  retry.to = ReplyStatus::kApproved;
  retry.count_send = true;
  retry.error = "429";
  retry.next_attempt_at = f.clock->now() + 2500ms + std::chrono::microseconds(700);
  retry.actor = "outbox";
  retry.keep_claim = true;
  retry.extend_lease = 30s;
  changes_as_stored(retry);

  ReplyChange sent;
  sent.from = ReplyStatus::kApproved;
  sent.to = ReplyStatus::kSent;
  sent.transport_message_id = "m1";
  sent.actor = "outbox";
  changes_as_stored(sent);
}

TEST_CASE("sqlite store: transition_and_claim_each writes each step on its own, in one call") {
  Fixture f;
  auto a = f.chat("a");
  auto b = f.chat("b");
  auto c = f.chat("c");
  auto qa = f.ask(a.id, "a1");
  auto qa2 = f.ask(a.id, "a2");
  auto qb = f.ask(b.id, "b1");
  auto qc = f.ask(c.id, "c1");
  for (auto id : {qa.reply_id, qc.reply_id}) f.claim_generating(id);  // qb stays new
  ReplyChange approve;
  approve.from = ReplyStatus::kGenerating;
  approve.to = ReplyStatus::kApproved;
  approve.draft_text = "answer";
  ClaimRequest next;
  next.status = ReplyStatus::kNew;
  next.to = ReplyStatus::kGenerating;
  next.worker = "w";
  next.head_of_chat_only = true;
  next.past_approved = true;
  next.chat_ids = {a.id};
  ClaimRequest nameless = next;  // refused before anything is written
  nameless.worker.clear();
  std::vector<ReplyStep> steps(4);
  steps[0] = {qa.reply_id, approve, {next}};
  steps[1] = {qb.reply_id, approve, {}};  // fails when written: qb is not generating
  steps[2] = {qc.reply_id, approve, {nameless}};
  steps[3] = {qc.reply_id, approve, {}};
  auto results = f.store->transition_and_claim_each(steps);
  REQUIRE(results.size() == 4);
  REQUIRE_MESSAGE(results[0].ok(), results[0].status().to_string());
  CHECK(results[0]->reply.status == ReplyStatus::kApproved);
  CHECK(results[0]->chat.external_id == "a");
  REQUIRE(results[0]->claimed.size() == 1);
  REQUIRE(results[0]->claimed[0].size() == 1);
  CHECK(results[0]->claimed[0][0].id == qa2.reply_id);
  CHECK(results[1].status().code() == StatusCode::kAborted);
  CHECK(results[2].status().code() == StatusCode::kInvalidArgument);
  REQUIRE_MESSAGE(results[3].ok(), results[3].status().to_string());
  CHECK(results[3]->reply.chat_id == c.id);
  CHECK(results[3]->chat.id == 0);  // nothing claimed: the chat is not read
  // What failed left the others alone, and wrote nothing itself.
  CHECK(f.store->get_reply(qa.reply_id)->status == ReplyStatus::kApproved);
  CHECK(f.store->get_reply(qa2.reply_id)->status == ReplyStatus::kGenerating);
  CHECK(f.store->get_reply(qb.reply_id)->status == ReplyStatus::kNew);
  CHECK(f.store->get_reply(qc.reply_id)->status == ReplyStatus::kApproved);
  CHECK(f.store->transition_and_claim_each({}).empty());
}

TEST_CASE(
    "sqlite store: transition_and_claim_each from many threads, more steps than a commit "
    "takes") {
  Fixture f;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;  // more than one group commit holds
  std::vector<std::vector<ReplyId>> ids(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto chat = f.chat(std::to_string(t) + "-" + std::to_string(i));
      auto q = f.ask(chat.id, "q");
      f.claim_generating(q.reply_id);
      ids[t].push_back(q.reply_id);
    }
  }
  ReplyChange approve;
  approve.from = ReplyStatus::kGenerating;
  approve.to = ReplyStatus::kApproved;
  approve.draft_text = "answer";
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Result<ChangeAndClaims>> results;
      if (t == 0) {  // single writes, queued in between the others' batches
        for (ReplyId id : ids[t]) results.push_back(f.store->transition_and_claim(id, approve, {}));
      } else {
        std::vector<ReplyStep> steps;
        for (ReplyId id : ids[t]) steps.push_back({id, approve, {}});
        results = f.store->transition_and_claim_each(steps);
      }
      if (results.size() != ids[t].size()) ++wrong;
      for (std::size_t k = 0; k < results.size(); ++k) {
        if (!results[k].ok() || results[k]->reply.id != ids[t][k]) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  for (const auto& v : ids) {
    for (ReplyId id : v) CHECK(f.store->get_reply(id)->status == ReplyStatus::kApproved);
  }
}

TEST_CASE("sqlite store: upsert_chats reads a page's chats at once, writes only what changed") {
  Fixture f;
  auto known = f.chat("1");
  f.clock->advance(1s);
  const std::vector<ChatInfo> infos = {{"telegram", "2", "Bob", "bob"},
                                       {"telegram", "1", "Ann", ""},      // as it is
                                       {"telegram", "2", "Bob", "bob"},   // twice in one page
                                       {"telegram", "1", "Ann K.", ""}};  // renamed
  auto chats = f.store->upsert_chats(infos);
  REQUIRE_MESSAGE(chats.ok(), chats.status().to_string());
  REQUIRE(chats->size() == 4);
  CHECK((*chats)[0].external_id == "2");
  CHECK((*chats)[0].id != known.id);
  CHECK((*chats)[2].id == (*chats)[0].id);
  CHECK((*chats)[1].id == known.id);
  CHECK((*chats)[3].id == known.id);
  CHECK((*chats)[3].title == "Ann K.");
  CHECK((*chats)[3].username == "ann");
  CHECK(f.store->get_chat(known.id)->title == "Ann K.");
  // One bad entry refuses the call, and nothing of it is written.
  const std::vector<ChatInfo> bad = {{"telegram", "3", "Cy", ""}, {"telegram", "", "", ""}};
  CHECK(f.store->upsert_chats(bad).status().code() == StatusCode::kInvalidArgument);
  CHECK(f.store->find_chat("telegram", "3").status().code() == StatusCode::kNotFound);
  CHECK(f.store->upsert_chats({})->empty());
}

TEST_CASE("sqlite store: a claim by channel takes only that channel's replies") {
  Fixture f;
  auto telegram = f.chat("1");
  auto api = f.store->upsert_chat({"api", "customer-7", "", ""});
  REQUIRE(api.ok());
  auto from_telegram = f.ask(telegram.id, "on telegram");
  auto from_api = f.ask(api->id, "over the api");
  ClaimRequest q;
  q.status = ReplyStatus::kNew;
  q.to = ReplyStatus::kGenerating;
  q.worker = "bot";
  q.limit = 10;
  q.channel = "telegram";
  auto got = f.store->claim_replies(q);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  REQUIRE(got->size() == 1);
  CHECK(got->front().id == from_telegram.reply_id);
  q.channel = "api";
  got = f.store->claim_replies(q);
  REQUIRE(got->size() == 1);
  CHECK(got->front().id == from_api.reply_id);
}

TEST_CASE("sqlite store: a worker's own live claim is retaken only when it asks for that") {
  Fixture f;
  auto chat = f.chat();
  auto q = f.ask(chat.id, "q");
  f.claim_generating(q.reply_id);
  f.draft(q.reply_id, "a", ReplyStatus::kApproved);
  ClaimRequest outbox;
  outbox.status = ReplyStatus::kApproved;
  outbox.worker = "bot:a";
  outbox.lease = 2min;
  REQUIRE(f.store->claim_replies(outbox)->size() == 1);
  // Running, the worker is not handed back what it is sending...
  outbox.retake_own = false;
  CHECK(f.store->claim_replies(outbox)->empty());
  // ...restarted under the same name, it takes over at once...
  outbox.retake_own = true;
  CHECK(f.store->claim_replies(outbox)->size() == 1);
  // ...and a claim whose lease ran out is anybody's again.
  f.clock->advance(3min);
  outbox.retake_own = false;
  CHECK(f.store->claim_replies(outbox)->size() == 1);
}

TEST_CASE("sqlite store: concurrent claimers on many threads claim each reply exactly once") {
  Fixture f;
  auto chat = f.chat();
  constexpr int kReplies = 400;
  std::vector<InboundMessage> batch(kReplies);
  for (int i = 0; i < kReplies; ++i) {
    batch[i].chat_id = chat.id;
    batch[i].text = "q" + std::to_string(i);
  }
  REQUIRE(f.store->append_inbound(batch).ok());
  constexpr int kThreads = 8;
  std::vector<std::vector<ReplyId>> claimed(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ClaimRequest q;
      q.status = ReplyStatus::kNew;
      q.to = ReplyStatus::kGenerating;
      q.worker = "w" + std::to_string(t);
      q.limit = 1 + t % 3;
      while (true) {
        auto r = f.store->claim_replies(q);
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (r->empty()) return;
        for (auto& reply : *r) {
          if (reply.claimed_by != q.worker) ++errors;
          claimed[t].push_back(reply.id);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  std::set<ReplyId> all;
  std::size_t total = 0;
  for (auto& v : claimed) {
    total += v.size();
    all.insert(v.begin(), v.end());
  }
  CHECK(total == kReplies);
  CHECK(all.size() == kReplies);
}

TEST_CASE("sqlite store: sessions restart on /start, the window reads one session") {
  Fixture f;
  auto chat = f.chat();
  for (int i = 0; i < 5; ++i) f.ask(chat.id, "old " + std::to_string(i));
  auto s1 = f.store->open_session(chat.id);
  REQUIRE(s1.ok());
  CHECK(f.store->open_session(chat.id)->id == s1->id);
  auto s2 = f.store->restart_session(chat.id);
  REQUIRE(s2.ok());
  CHECK(s2->id != s1->id);
  CHECK(f.store->get_session(s1->id)->closed_at.has_value());
  for (int i = 0; i < 3; ++i) f.ask(chat.id, "new " + std::to_string(i));
  auto window = f.store->recent_messages(s2->id, 10);
  REQUIRE(window->size() == 3);
  CHECK(window->front().text == "new 0");  // oldest first
  CHECK(window->back().text == "new 2");
  window = f.store->recent_messages(s1->id, 2);
  REQUIRE(window->size() == 2);
  CHECK(window->front().text == "old 3");
  CHECK(f.store->set_session_summary(s2->id, "asked three things", window->back().id).ok());
  CHECK(f.store->get_session(s2->id)->summary == "asked three things");
  CHECK(f.store->set_session_summary(999, "x", 1).code() == StatusCode::kNotFound);
  CHECK(f.store->recent_messages(s2->id, 0).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: the dialog window before a question, however many came after it") {
  Fixture f;
  auto chat = f.chat();
  std::vector<InboundResult> asked;
  for (int i = 0; i < 60; ++i) {
    asked.push_back(f.ask(chat.id, "q" + std::to_string(i)));
    if (i % 2 == 0) {  // the bot's notices are system lines, left out of the dialog
      NewMessage note;
      note.chat_id = chat.id;
      note.role = Role::kSystem;
      note.text = "received";
      REQUIRE(f.store->append_message(note).ok());
    }
  }
  const SessionId session = asked[0].message.session_id;
  // The third question's window, with 57 questions and 29 notices after it.
  auto window = f.store->dialog_window(session, 8, asked[2].message.id);
  REQUIRE_MESSAGE(window.ok(), window.status().to_string());
  REQUIRE(window->size() == 3);
  CHECK(window->front().text == "q0");
  CHECK(window->back().text == "q2");
  window = f.store->dialog_window(session, 8, asked[40].message.id);
  REQUIRE(window->size() == 8);
  CHECK(window->front().text == "q33");
  CHECK(window->back().text == "q40");
  window = f.store->dialog_window(session, 4, 0);  // up to the newest
  REQUIRE(window->size() == 4);
  CHECK(window->back().text == "q59");
  for (const auto& m : *window) CHECK(m.role != Role::kSystem);
  CHECK(f.store->dialog_window(session, 0, 0).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: chat history pages across sessions and searches literally") {
  Fixture f;
  auto chat = f.chat();
  for (int i = 0; i < 25; ++i) {
    f.ask(chat.id, i == 7 ? "refund 100%_off" : "message " + std::to_string(i));
    if (i == 12) REQUIRE(f.store->restart_session(chat.id).ok());
  }
  std::vector<std::string> seen;
  HistoryQuery q;
  q.limit = 10;
  while (true) {
    auto page = f.store->chat_history(chat.id, q);
    REQUIRE(page.ok());
    if (page->empty()) break;
    for (auto& m : *page) seen.push_back(m.text);
    q.before_id = page->back().id;
  }
  REQUIRE(seen.size() == 25);
  CHECK(seen.front() == "message 24");
  CHECK(seen.back() == "message 0");
  auto found = f.store->chat_history(chat.id, {.search = "100%_"});
  REQUIRE(found->size() == 1);
  CHECK(found->front().text == "refund 100%_off");
  CHECK(f.store->chat_history(chat.id, {.search = "1_0"})->empty());  // "_" is no wildcard
  CHECK(f.store->chat_history(chat.id, {.search = "REFUND"})->size() == 1);
  CHECK(f.store->chat_history(chat.id, {.limit = 5000}).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: handoff mode, blocking, chat listing and operator replies") {
  Fixture f;
  auto a = f.chat("1");
  auto b = f.store->upsert_chat({"telegram", "2", "Bob", "bobby"});
  REQUIRE(f.store->set_chat_mode(a.id, ChatMode::kOperator, "operator:alice").ok());
  auto handoff = f.store->list_chats({.mode = ChatMode::kOperator});
  REQUIRE(handoff->size() == 1);
  CHECK(handoff->front().id == a.id);
  CHECK(f.store->list_chats({.search = "bob"})->front().id == b->id);
  CHECK(f.store->list_chats({})->size() == 2);
  CHECK(f.store->set_chat_mode(999, ChatMode::kBot, "x").code() == StatusCode::kNotFound);

  // in operator mode, the user's message opens no reply; the operator's answer goes via outbox
  InboundMessage m;
  m.chat_id = a.id;
  m.text = "I need a human";
  m.open_reply = false;
  auto in = append_inbound(*f.store, m);
  CHECK(in->reply_id == 0);
  NewReply op;
  op.chat_id = a.id;
  op.status = ReplyStatus::kApproved;
  op.final_text = "Hi, Alice here.";
  op.author = "alice";
  op.actor = "operator:alice";
  op.audit_action = "handoff_reply";
  auto reply = f.store->create_reply(op);
  REQUIRE(reply.ok());
  CHECK(reply->status == ReplyStatus::kApproved);
  op.final_text.clear();
  CHECK(f.store->create_reply(op).status().code() == StatusCode::kInvalidArgument);

  auto audit = f.store->list_audit({.chat_id = a.id});
  REQUIRE(audit->size() == 2);
  CHECK(audit->at(1).action == "handoff");
  CHECK(audit->at(0).action == "handoff_reply");
  CHECK(f.store->list_audit({.actor = "operator:alice"})->size() == 2);

  REQUIRE(f.store->set_chat_blocked(a.id, true).ok());
  CHECK(f.store->get_chat(a.id)->blocked);
}

TEST_CASE("sqlite store: statistics count days, statuses, latencies, decisions, providers") {
  Fixture f;
  f.clock->set(Timestamp(std::chrono::hours(24 * 20000)));  // 2024-10-04, midnight UTC
  auto chat1 = f.chat("1");
  auto chat2 = f.chat("2");
  // Three questions answered after 1 s, 2 s and 10 s; one waits for an operator 20 s.
  const int waits[] = {1, 2, 10};
  for (int i = 0; i < 3; ++i) {
    auto in = f.ask(i == 2 ? chat2.id : chat1.id, "q");
    f.claim_generating(in.reply_id);
    f.clock->advance(std::chrono::seconds(waits[i]));
    ReplyChange d;
    d.from = ReplyStatus::kGenerating;
    d.to = i == 2 ? ReplyStatus::kPending : ReplyStatus::kApproved;
    d.draft_text = "a";
    d.provider = i == 0 ? "primary" : "backup";
    d.providers_tried = i == 0 ? 1 : 2;
    REQUIRE(f.store->transition_reply(in.reply_id, d).ok());
    if (i == 2) {
      f.clock->advance(20s);
      ReplyChange ok;
      ok.from = ReplyStatus::kPending;
      ok.to = ReplyStatus::kApproved;
      ok.actor = "operator:alice";
      ok.audit_action = "approve";
      REQUIRE(f.store->transition_reply(in.reply_id, ok).ok());
    }
    f.move(in.reply_id, ReplyStatus::kApproved, ReplyStatus::kSent);
  }
  f.clock->advance(24h);
  auto failed = f.ask(chat1.id, "next day");
  f.claim_generating(failed.reply_id);
  f.move(failed.reply_id, ReplyStatus::kGenerating, ReplyStatus::kFailed);

  auto stats = f.store->stats({});
  REQUIRE_MESSAGE(stats.ok(), stats.status().to_string());
  REQUIRE(stats->days.size() == 2);
  CHECK(stats->days[0].day == "2024-10-04");
  CHECK(stats->days[0].user_messages == 3);
  CHECK(stats->days[0].messages == 6);  // three questions, three answers
  CHECK(stats->days[0].active_users == 2);
  CHECK(stats->days[0].replies_sent == 3);
  CHECK(stats->days[1].day == "2024-10-05");
  CHECK(stats->days[1].active_users == 1);
  CHECK(stats->replies_by_status[static_cast<int>(ReplyStatus::kSent)] == 3);
  CHECK(stats->failed == 1);
  CHECK(stats->response_time.count == 3);
  CHECK(*stats->response_time.p50_ms == 2000.0);
  CHECK(*stats->response_time.p95_ms == 30000.0);
  CHECK(stats->moderation_wait.count == 1);
  CHECK(*stats->moderation_wait.p50_ms == 20000.0);
  CHECK(stats->approved == 1);
  CHECK(stats->edited == 0);
  REQUIRE(stats->providers.size() == 2);
  CHECK(stats->providers[0].provider == "backup");
  CHECK(stats->providers[0].replies == 2);
  CHECK(stats->fallback_replies == 2);

  // A range picks out one day.
  StatsQuery second_day;
  second_day.from = Timestamp(std::chrono::hours(24 * 20001));
  auto later = f.store->stats(second_day);
  REQUIRE(later->days.size() == 1);
  CHECK_FALSE(later->response_time.p50_ms.has_value());
  StatsQuery backwards;
  backwards.from = f.clock->now();
  backwards.to = backwards.from - 1h;
  CHECK(f.store->stats(backwards).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: settings are a durable key-value table") {
  Fixture f;
  CHECK(f.store->get_setting("telegram.offset").status().code() == StatusCode::kNotFound);
  CHECK(f.store->put_setting("telegram.offset", "812345").ok());
  CHECK(f.store->put_setting("telegram.offset", "812346").ok());
  f.store.reset();
  f.store = f.open();
  CHECK(*f.store->get_setting("telegram.offset") == "812346");
  CHECK(f.store->put_setting("", "x").code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: wait_for_change wakes on a commit from another thread") {
  Fixture f;
  const auto g0 = f.store->wait_for_change(0, 0ms);
  CHECK(f.store->wait_for_change(g0, 20ms) == g0);  // nothing happened
  std::thread writer([&] {
    std::this_thread::sleep_for(30ms);
    (void)f.store->put_setting("k", "v");
  });
  const auto g1 = f.store->wait_for_change(g0, 5s);
  writer.join();
  CHECK(g1 != g0);
}

TEST_CASE("sqlite store: wait_for_change sees commits of another store on the same file") {
  Fixture f;
  auto other = f.open();  // a second process's view, as far as SQLite is concerned
  const auto g0 = f.store->wait_for_change(0, 0ms);
  std::thread writer([&] {
    std::this_thread::sleep_for(30ms);
    (void)other->put_setting("k", "v");
  });
  const auto g1 = f.store->wait_for_change(g0, 5s);
  writer.join();
  CHECK(g1 != g0);
}

TEST_CASE("sqlite store: a database from a newer schema is refused with a clear error") {
  Fixture f;
  f.store.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.dir.file("store.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  SqliteStoreOptions options;
  options.path = f.dir.file("store.db");
  options.logger = null_logger();
  auto r = open_sqlite_store(options);
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r.status().message().find("schema version 99") != std::string::npos);
  CHECK(r.status().message().find("upgrade llmassist") != std::string::npos);
}

TEST_CASE("sqlite store: a corrupt file gives a clear error, no crash") {
  TempDir dir;
  const std::string path = dir.file("corrupt.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out << static_cast<char>((i * 7919) % 251);
  }
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  auto r = open_sqlite_store(options);
  CHECK(r.status().code() == StatusCode::kDataLoss);
  CHECK(r.status().message().find(path) != std::string::npos);
  CHECK(r.status().message().find("not an SQLite database") != std::string::npos);
}

TEST_CASE("sqlite store: damage to a real database's pages is reported as data loss") {
  TempDir dir;
  const std::string path = dir.file("damaged.db");
  {
    SqliteStoreOptions options;
    options.path = path;
    options.logger = null_logger();
    auto store = open_sqlite_store(options);
    REQUIRE(store.ok());
    auto chat = (*store)->upsert_chat({"telegram", "1", "", ""});
    std::vector<InboundMessage> batch(2000);
    for (auto& m : batch) {
      m.chat_id = chat->id;
      m.text = std::string(200, 'x');
    }
    REQUIRE((*store)->append_inbound(batch).ok());
  }  // closing checkpoints the WAL into the main file
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(4096 * 3);  // overwrite pages in the middle: b-tree pages of the tables
    for (int i = 0; i < 4096 * 20; ++i) io.put(static_cast<char>(0xA5));
  }
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  auto store = open_sqlite_store(options);
  if (!store.ok()) {
    CHECK(store.status().code() == StatusCode::kDataLoss);
    return;
  }
  auto chat = (*store)->find_chat("telegram", "1");
  Status seen = chat.status();
  if (chat.ok()) seen = (*store)->chat_history(chat->id, {.limit = 1000}).status();
  CHECK(seen.code() == StatusCode::kDataLoss);
  CHECK(seen.message().find("damaged") != std::string::npos);
}

TEST_CASE("sqlite store: an unwritable or missing folder gives a clear error, no crash") {
  TempDir dir;
  SqliteStoreOptions options;
  options.logger = null_logger();
  options.path = dir.file("no/such/folder/store.db");
  auto missing = open_sqlite_store(options);
  CHECK(missing.status().code() == StatusCode::kUnavailable);
  CHECK(missing.status().message().find("no/such/folder/store.db") != std::string::npos);

  options.path = "";
  CHECK(open_sqlite_store(options).status().code() == StatusCode::kInvalidArgument);
  options.path = ":memory:";
  CHECK(open_sqlite_store(options).status().code() == StatusCode::kInvalidArgument);

  if (::geteuid() == 0) {
    // root ignores file permissions; a path under /proc is unwritable for everyone.
    options.path = "/proc/llmassist-test/store.db";
  } else {
    std::filesystem::create_directory(dir.path() / "ro");
    std::filesystem::permissions(
        dir.path() / "ro", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    options.path = dir.file("ro/store.db");
  }
  auto unwritable = open_sqlite_store(options);
  CHECK_FALSE(unwritable.ok());
  CHECK(unwritable.status().message().find(options.path) != std::string::npos);
}

TEST_CASE("sqlite store: a read-only database file is reported, not crashed on") {
  TempDir dir;
  const std::string path = dir.file("ro.db");
  {
    SqliteStoreOptions options;
    options.path = path;
    options.logger = null_logger();
    REQUIRE(open_sqlite_store(options).ok());
  }
  if (::geteuid() == 0) return;  // root writes through file permissions
  std::filesystem::permissions(path, std::filesystem::perms::owner_read);
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  auto r = open_sqlite_store(options);
  CHECK_FALSE(r.ok());
}

// ---- the memory's records -----------------------------------------------------------------

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The first column of the first row of `sql` on the file, as text.
std::string query_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK,
                  sqlite3_errmsg(db));
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// A recall item of the kind "message", as the conformance checks make them.
RecallItem item(ChatId chat, const std::string& key, const std::string& terms,
                MessageId message = 0) {
  return llmassist::testing::store_checks::recall(chat, key, terms, message);
}

std::vector<std::string> hit_keys(const Result<std::vector<RecallHit>>& hits) {
  REQUIRE_MESSAGE(hits.ok(), hits.status().to_string());
  std::vector<std::string> out;
  for (const RecallHit& h : *hits) out.push_back(h.item.key);
  return out;
}

Result<std::vector<RecallHit>> search(MessageStore& store, ChatId chat,
                                      std::vector<std::string> terms) {
  TermQuery q;
  q.chat_id = chat;
  q.terms = std::move(terms);
  return store.search_recall_terms(q);
}

}  // namespace

TEST_CASE("sqlite store: hostile recall terms are words like any other, never FTS5 syntax") {
  Fixture f;
  const Chat mine = f.chat("1");
  const Chat theirs = f.chat("2");
  // Terms that would be operators, quotes, column filters or another chat's tokens if they
  // reached the query syntax.
  const std::vector<std::string> hostile = {"\"",        "\"\"",
                                            "a\"b",      "*",
                                            "pre*",      "NEAR",
                                            "near(a b)", "OR",
                                            "AND",       "NOT",
                                            "(",         ")",
                                            "^x",        "-x",
                                            "tokens:x",  "{tokens}:y",
                                            "x:y",       "c2_secret",
                                            "_",         "__",
                                            "'",         "a'b",
                                            "\\",        "заказ*",
                                            "\"заказ\"", std::string("nul\0byte", 8),
                                            ";DROP",     "+",
                                            "日本",      "ÿ"};
  std::vector<RecallItem> items;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    items.push_back(item(mine.id, "m" + std::to_string(i), hostile[i]));
  }
  items.push_back(item(theirs.id, "theirs", "secret x y near or and not заказ"));
  REQUIRE(f.store->add_recall_items(items).ok());
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    CAPTURE(hostile[i]);
    auto hits = search(*f.store, mine.id, {hostile[i]});
    // Each finds its own item: the one whose terms are exactly that word.
    auto keys = hit_keys(hits);
    CHECK(std::find(keys.begin(), keys.end(), "m" + std::to_string(i)) != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "theirs") == keys.end());
  }
  // Every hostile word at once, in one query: still only this chat's items.
  TermQuery every;
  every.chat_id = mine.id;
  every.terms = hostile;
  every.limit = 1000;
  auto all = hit_keys(f.store->search_recall_terms(every));
  CHECK(all.size() == hostile.size());
  // The other chat, searched with words that name this chat's tokens, finds only its own.
  auto other = hit_keys(search(*f.store, theirs.id, {"c1_NEAR", "NEAR", "\"", "x", "*"}));
  CHECK(other == std::vector<std::string>{"theirs"});
  CHECK(hit_keys(search(*f.store, theirs.id, {"c1_m0", "OR", "AND"})) ==
        std::vector<std::string>{"theirs"});  // "or" and "and" are its words
  // Words are split at white space, so a term is a word and " " is none.
  CHECK(hit_keys(search(*f.store, mine.id, {" ", "\t\n"})).empty());
  CHECK(search(*f.store, mine.id, std::vector<std::string>(1025, "x")).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE(
    "sqlite store: a version-2 database file is migrated to the memory's schema, its data "
    "kept") {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  {
    auto conn = detail::Connection::open(path, 5s, false);
    REQUIRE(conn.ok());
    REQUIRE(detail::migrate_sqlite_schema(**conn, 2).ok());
    REQUIRE((*conn)
                ->exec("INSERT INTO chats (id, channel, external_id, title, created_at, "
                       "updated_at) VALUES (7, 'telegram', '42', 'Ann', 1, 1);"
                       "INSERT INTO sessions (id, chat_id, started_at, summary) "
                       "VALUES (3, 7, 1, 'an old summary');"
                       "INSERT INTO messages (id, chat_id, session_id, role, text, created_at) "
                       "VALUES (11, 7, 3, 'user', 'Где мой заказ?', 2);")
                .ok());
  }
  CHECK(query_text(path, "PRAGMA user_version") == "2");
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  auto store = open_sqlite_store(options);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  CHECK(query_text(path, "PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
  auto chat = (*store)->find_chat("telegram", "42");
  REQUIRE(chat.ok());
  CHECK(chat->id == 7);
  CHECK_FALSE(chat->opted_out_at.has_value());  // the contact columns (version 5) came too
  auto noted = (*store)->update_chat(7, {.notes = std::string("from version 2")});
  REQUIRE_MESSAGE(noted.ok(), noted.status().to_string());
  CHECK(noted->notes == "from version 2");
  auto session = (*store)->get_session(3);
  REQUIRE(session.ok());
  CHECK(session->summary == "an old summary");
  auto after = (*store)->messages_after(3, 0, 10);
  REQUIRE(after.ok());
  REQUIRE(after->size() == 1);
  CHECK(after->front().text == "Где мой заказ?");
  // The new tables work on the migrated file.
  NewSessionSummary n;
  n.session_id = 3;
  n.content = "a first version";
  n.last_message_id = 11;
  auto v1 = (*store)->add_session_summary(n);
  REQUIRE_MESSAGE(v1.ok(), v1.status().to_string());
  CHECK(v1->version == 1);
  CHECK((*store)->get_session(3)->summary == "a first version");
  RecallItem r = item(7, "message:11", "заказ", 11);
  REQUIRE((*store)->add_recall_items(std::span<const RecallItem>(&r, 1)).ok());
  CHECK(hit_keys(search(**store, 7, {"заказ"})) == std::vector<std::string>{"message:11"});
}

TEST_CASE("sqlite store: in a long chat a recall search ranks its rarer terms' items") {
  Fixture f;
  const Chat c = f.chat("1");
  // 3,000 items say "order"; six also say "kazan", one says only "kazan".
  std::vector<RecallItem> items;
  for (int i = 0; i < 3000; ++i) {
    items.push_back(
        item(c.id, "o" + std::to_string(i), i % 500 == 0 ? "order kazan" : "order", i + 1));
  }
  items.push_back(item(c.id, "k", "kazan", 3001));
  REQUIRE(f.store->add_recall_items(items).ok());
  TermQuery q;
  q.chat_id = c.id;
  q.terms = {"order", "kazan"};
  q.limit = 10;
  // "order" matches too many to rank: the items with "kazan" are the answer, best first.
  auto keys = hit_keys(f.store->search_recall_terms(q));
  REQUIRE(keys.size() == 7);
  CHECK(std::find(keys.begin(), keys.end(), "k") != keys.end());
  for (const auto& key : keys) CHECK((key == "k" || std::stoi(key.substr(1)) % 500 == 0));
  // The rarest term always stays: "order" alone still finds its items.
  q.terms = {"order"};
  CHECK(hit_keys(f.store->search_recall_terms(q)).size() == 10);

  // When the best ranked are all in the window (from before_message_id on), the search goes
  // on to the older ones.
  q.terms = {"order", "kazan"};
  q.limit = 3;
  q.before_message_id = 2000;  // leaves out "k" and o2000, o2500
  keys = hit_keys(f.store->search_recall_terms(q));
  CHECK(keys == std::vector<std::string>{"o1500", "o1000", "o500"});
  q.terms = {"order"};
  q.before_message_id = 5;  // the 3,000 items' newest 2,996 are in the window
  keys = hit_keys(f.store->search_recall_terms(q));
  CHECK(keys == std::vector<std::string>{"o3", "o2", "o1"});
}

TEST_CASE("sqlite store: an erased chat's recall terms are gone from the FTS index and the files") {
  Fixture f;
  const Chat gone = f.chat("100");
  const Chat kept = f.chat("200");
  auto asked = f.ask(gone.id, "паспорт AB9981");
  const std::string path = f.dir.file("store.db");
  std::vector<RecallItem> items = {
      item(gone.id, "message:1", "паспортнойномер ab9981zz", asked.message.id),
      item(kept.id, "message:2", "соседскийвопрос")};
  items[0].text = "my passport AB9981ZZ";
  REQUIRE(f.store->add_recall_items(items).ok());
  // Many more items, so that the index has segments the erased tokens' segment merges with.
  for (int round = 0; round < 20; ++round) {
    std::vector<RecallItem> more;
    for (int i = 0; i < 50; ++i) {
      more.push_back(item(kept.id, "fact:" + std::to_string(round * 50 + i),
                          "слово" + std::to_string(i) + " общее"));
    }
    REQUIRE(f.store->add_recall_items(more).ok());
  }
  const std::string token = "c" + std::to_string(gone.id) + "_ab9981zz";
  auto bytes = [&] { return file_bytes(path) + file_bytes(path + "-wal"); };
  REQUIRE(bytes().find(token) != std::string::npos);  // the index holds the token before
  REQUIRE(bytes().find("AB9981ZZ") != std::string::npos);

  auto erased = f.store->erase_chat(gone.id);
  REQUIRE_MESSAGE(erased.ok(), erased.status().to_string());
  CHECK(erased->memory_records == 1);
  CHECK(erased->reclaimed);
  CHECK(query_text(path, "SELECT count(*) FROM recall_fts WHERE recall_fts MATCH '\"" + token +
                             "\"'") == "0");
  CHECK(query_text(path, "SELECT count(*) FROM recall_items WHERE chat_id = " +
                             std::to_string(gone.id)) == "0");
  const std::string after = bytes();
  CHECK(after.find(token) == std::string::npos);
  CHECK(after.find("ab9981zz") == std::string::npos);
  CHECK(after.find("AB9981ZZ") == std::string::npos);
  CHECK(after.find("паспортнойномер") == std::string::npos);
  CHECK(after.find("соседскийвопрос") != std::string::npos);  // the search is honest
  CHECK(hit_keys(search(*f.store, kept.id, {"соседскийвопрос"})) ==
        std::vector<std::string>{"message:2"});
  CHECK(query_text(path,
                   "INSERT INTO recall_fts (recall_fts) VALUES ('integrity-check') "
                   "RETURNING 'ok'") == "ok");
}

TEST_CASE("sqlite store: a damaged stored vector is data loss, never read past its end") {
  Fixture f;
  const Chat c = f.chat();
  RecallItem r = item(c.id, "k", "x");
  r.vector = {1.0F, 2.0F};
  r.vector_model = "m";
  REQUIRE(f.store->add_recall_items(std::span<const RecallItem>(&r, 1)).ok());
  const std::string path = f.dir.file("store.db");
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "UPDATE recall_items SET vector = x'00000000000000'", nullptr, nullptr,
                         nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "INSERT INTO embedding_cache (model, digest, vector, created_at) "
                         "VALUES ('m', 'd', x'0102', 0)",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  VectorQuery q;
  q.chat_id = c.id;
  q.vector = {1.0F, 0.0F};
  q.model = "m";
  auto hits = f.store->search_recall_vectors(q);
  CHECK(hits.status().code() == StatusCode::kDataLoss);
  CHECK(hits.status().message().find("7 bytes") != std::string::npos);
  CHECK(search(*f.store, c.id, {"x"}).status().code() == StatusCode::kDataLoss);
  const std::vector<std::string> digests = {"d"};
  CHECK(f.store->cached_embeddings("m", digests).status().code() == StatusCode::kDataLoss);
  // Vectors that could not be searched are refused on the way in.
  std::vector<std::pair<RecallItemId, std::vector<float>>> bad = {
      {1, {1.0F, std::numeric_limits<float>::quiet_NaN()}}};
  CHECK(f.store->set_recall_vectors(bad, "m").code() == StatusCode::kInvalidArgument);
  q.vector = {0.0F, 0.0F};
  CHECK(f.store->search_recall_vectors(q).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("sqlite store: the memory's writes wake a worker waiting for a change") {
  Fixture f;
  const auto g0 = f.store->wait_for_change(0, 0ms);
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    NewMemoryJob j;
    j.kind = "embed";
    j.key = "embed:1";
    REQUIRE(f.store->enqueue_job(j).ok());
  });
  const auto g1 = f.store->wait_for_change(g0, 30s);
  writer.join();
  CHECK(g1 != g0);
  auto claimed = f.store->claim_jobs({.worker = "w"});
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  const auto g2 = f.store->wait_for_change(g1, 0ms);
  CHECK(g2 != g1);  // the claim was a write
  // A claim that finds nothing writes nothing, and wakes nobody.
  REQUIRE(f.store->claim_jobs({.worker = "w2"})->empty());
  CHECK(f.store->wait_for_change(g2, 0ms) == g2);
  REQUIRE(f.store->finish_job(claimed->front().id, "w").ok());
  CHECK(f.store->wait_for_change(g2, 0ms) != g2);
}
