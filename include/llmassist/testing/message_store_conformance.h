// The MessageStore conformance suite: what every store must do, checked through the public
// interface only, so that a user's own store runs the same checks as the shipped ones.
//
//   auto results = llmassist::testing::run_message_store_conformance(
//       [](std::shared_ptr<llmassist::Clock> clock) { return open_my_store(clock); });
//   for (const auto& r : results) if (!r.passed) report(r.name, r.message);
//
// The factory makes a new, empty store for each check, reading its time from `clock` (the checks
// move that clock to let leases and backoff run out; no check sleeps for them). Optional
// capabilities (list_audit, stats, settings, the memory's records) a store answers
// kUnimplemented for are skipped, not failed.
//
// The checks: the lifecycle through the store (every legal transition is applied, each illegal
// one refused with kFailedPrecondition, a stale status or version refused with kAborted; the
// stored reply — timestamps, texts, claim — is what apply_reply_change() says; the sent answer
// joins the message log; the audit event is written), claims and leases, idempotent inbound,
// sessions, the message log, transition_and_claim(_each), unknown ids, wait_for_change()
// waking on a write, and the memory's records (summary versions and their compare-and-set, jobs
// and their leases, the recall index and the embedding cache, their erasure), which are
// optional: a store that answers kUnimplemented for them is skipped.
//
// Thread-safety: run one check at a time per factory unless its stores are independent.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/message_store.h"
#include "llmassist/reply_lifecycle.h"
#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// Makes a new, empty store that reads its time from `clock`.
using MessageStoreFactory =
    std::function<Result<std::unique_ptr<MessageStore>>(std::shared_ptr<Clock> clock)>;

namespace store_checks {

using namespace std::chrono_literals;

struct Harness {
  MessageStore& store;
  SteppedClock& clock;
};

inline std::string str(ReplyStatus s) { return std::string(to_string(s)); }

// A chat on the "test" channel, its external id `name`.
inline std::optional<Chat> chat(CheckContext& t, Harness& h, const std::string& name = "c1",
                                const std::string& channel = "test") {
  ChatInfo info;
  info.channel = channel;
  info.external_id = name;
  info.title = "Title " + name;
  auto c = h.store.upsert_chat(info);
  if (!t.expect_ok(c.status(), "upsert_chat")) return std::nullopt;
  return *c;
}

// A question in `chat` and its reply (status new).
inline ReplyId ask(CheckContext& t, Harness& h, ChatId chat, const std::string& text = "hello",
                   const std::string& dedup = "") {
  InboundMessage m;
  m.chat_id = chat;
  m.text = text;
  m.author = "Ann";
  m.dedup_key = dedup;
  auto r = append_inbound(h.store, m);
  if (!t.expect_ok(r.status(), "append_inbound")) return 0;
  t.expect(r->reply_id > 0, "append_inbound opened no reply");
  return r->reply_id;
}

inline ReplyChange move(ReplyStatus from, ReplyStatus to) {
  ReplyChange c;
  c.from = from;
  c.to = to;
  return c;
}

// Brings a new reply to `target` by legal steps; false when a step failed.
inline bool bring_to(CheckContext& t, Harness& h, ReplyId id, ReplyStatus target) {
  using S = ReplyStatus;
  std::vector<ReplyChange> path;
  auto step = [&](S from, S to) { path.push_back(move(from, to)); };
  switch (target) {
    case S::kNew:
      break;
    case S::kGenerating:
      step(S::kNew, S::kGenerating);
      break;
    case S::kPending:
    case S::kApproved:
    case S::kRejected:
    case S::kSent:
      step(S::kNew, S::kGenerating);
      step(S::kGenerating, S::kPending);
      path.back().draft_text = "a draft";
      if (target == S::kApproved || target == S::kSent) step(S::kPending, S::kApproved);
      if (target == S::kRejected) step(S::kPending, S::kRejected);
      if (target == S::kSent) step(S::kApproved, S::kSent);
      break;
    case S::kFailed:
      step(S::kNew, S::kGenerating);
      step(S::kGenerating, S::kFailed);
      path.back().error = "every provider failed";
      break;
    case S::kCancelled:
      step(S::kNew, S::kCancelled);
      break;
  }
  for (const ReplyChange& c : path) {
    auto r = h.store.transition_reply(id, c);
    if (!t.expect_ok(r.status(), "moving a reply from " + str(c.from) + " to " + str(c.to))) {
      return false;
    }
  }
  return true;
}

// Whether two replies agree in everything the lifecycle decides.
inline void same_reply(CheckContext& t, const Reply& want, const Reply& got,
                       std::string_view what) {
  const std::string w(what);
  t.expect(got.status == want.status,
           w + ": status " + str(got.status) + ", expected " + str(want.status));
  t.expect(got.draft_text == want.draft_text, w + ": draft_text '" + got.draft_text + "'");
  t.expect(got.final_text == want.final_text,
           w + ": final_text '" + got.final_text + "', expected '" + want.final_text + "'");
  t.expect(got.author == want.author, w + ": author");
  t.expect(got.provider == want.provider, w + ": provider");
  t.expect(got.error == want.error, w + ": error");
  t.expect(got.generation_attempts == want.generation_attempts, w + ": generation_attempts");
  t.expect(got.send_attempts == want.send_attempts, w + ": send_attempts");
  t.expect(got.version == want.version, w + ": version " + std::to_string(got.version) +
                                            ", expected " + std::to_string(want.version));
  t.expect(got.claimed_by == want.claimed_by, w + ": claimed_by '" + got.claimed_by + "'");
  t.expect(got.lease_until == want.lease_until, w + ": lease_until");
  t.expect(got.next_attempt_at == want.next_attempt_at, w + ": next_attempt_at");
  t.expect(got.transport_message_id == want.transport_message_id, w + ": transport_message_id");
  t.expect(got.updated_at == want.updated_at, w + ": updated_at");
  t.expect(got.generated_at == want.generated_at, w + ": generated_at");
  t.expect(got.decided_at == want.decided_at, w + ": decided_at");
  t.expect(got.sent_at == want.sent_at, w + ": sent_at");
}

constexpr std::array<ReplyStatus, 8> kAll = {ReplyStatus::kNew,      ReplyStatus::kGenerating,
                                             ReplyStatus::kPending,  ReplyStatus::kApproved,
                                             ReplyStatus::kRejected, ReplyStatus::kSent,
                                             ReplyStatus::kFailed,   ReplyStatus::kCancelled};

// ---- the checks ---------------------------------------------------------------------------

inline void chats_and_sessions(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  t.expect(c->id > 0, "a chat gets a positive id");
  auto again = h.store.upsert_chat({"test", "c1", "New title", ""});
  if (t.expect_ok(again.status(), "upsert_chat again")) {
    t.expect(again->id == c->id, "upsert_chat of a known chat made a new one");
    t.expect(again->title == "New title", "upsert_chat did not refresh the title");
  }
  auto found = h.store.find_chat("test", "c1");
  t.expect(found.ok() && found->id == c->id, "find_chat did not find the chat");
  t.expect_code(h.store.find_chat("test", "nobody").status(), StatusCode::kNotFound,
                "find_chat of an unknown chat");
  t.expect_code(h.store.upsert_chat({"", "x", "", ""}).status(), StatusCode::kInvalidArgument,
                "upsert_chat without a channel");

  auto s1 = h.store.open_session(c->id);
  auto s2 = h.store.open_session(c->id);
  if (!t.expect_ok(s1.status(), "open_session") || !t.expect_ok(s2.status(), "open_session")) {
    return;
  }
  t.expect(s1->id == s2->id, "open_session opened a second session");
  auto s3 = h.store.restart_session(c->id);
  if (t.expect_ok(s3.status(), "restart_session")) {
    t.expect(s3->id != s1->id, "restart_session kept the old session");
    auto old = h.store.get_session(s1->id);
    t.expect(old.ok() && old->closed_at.has_value(), "restart_session left the old one open");
  }
  t.expect_ok(h.store.set_session_summary(s2->id, "summary", 0), "set_session_summary");
  auto read = h.store.get_session(s2->id);
  t.expect(read.ok() && read->summary == "summary", "the summary was not stored");
  t.expect_ok(h.store.set_chat_mode(c->id, ChatMode::kOperator, "operator:alice"), "set_chat_mode");
  t.expect_ok(h.store.set_chat_blocked(c->id, true), "set_chat_blocked");
  auto after = h.store.get_chat(c->id);
  if (t.expect_ok(after.status(), "get_chat")) {
    t.expect(after->mode == ChatMode::kOperator, "the chat mode was not stored");
    t.expect(after->blocked, "blocked was not stored");
  }
}

inline void idempotent_inbound(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  InboundMessage m;
  m.chat_id = c->id;
  m.text = "Grüße, 世界 👋";
  m.dedup_key = "test:1";
  auto first = append_inbound(h.store, m);
  if (!t.expect_ok(first.status(), "append_inbound")) return;
  t.expect(!first->duplicate, "the first message was called a duplicate");
  t.expect(first->message.text == m.text, "the text did not survive intact (UTF-8)");
  t.expect(first->message.role == Role::kUser, "an inbound message is the user's");
  auto second = append_inbound(h.store, m);
  if (!t.expect_ok(second.status(), "append_inbound of a duplicate")) return;
  t.expect(second->duplicate, "a second message with the same dedup_key was not a duplicate");
  t.expect(second->message.id == first->message.id, "the duplicate names another message");
  t.expect(second->reply_id == first->reply_id, "the duplicate names another reply");
  auto history = h.store.chat_history(c->id, {});
  t.expect(history.ok() && history->size() == 1, "a duplicate was stored again");
  auto replies = h.store.list_replies({});
  t.expect(replies.ok() && replies->size() == 1, "a duplicate opened a second reply");

  InboundMessage quiet = m;
  quiet.dedup_key = "test:2";
  quiet.open_reply = false;
  auto q = append_inbound(h.store, quiet);
  t.expect(q.ok() && q->reply_id == 0, "open_reply = false opened a reply");
  InboundMessage none;
  none.text = "x";
  t.expect_code(append_inbound(h.store, none).status(), StatusCode::kInvalidArgument,
                "an inbound message without a chat");
}

inline void legal_transitions(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  int n = 0;
  for (ReplyStatus from : kAll) {
    for (ReplyStatus to : kAll) {
      if (!is_legal_transition(from, to)) continue;
      const ReplyId id = ask(t, h, c->id, "q" + std::to_string(++n));
      if (id == 0 || !bring_to(t, h, id, from)) return;
      auto before = h.store.get_reply(id);
      if (!t.expect_ok(before.status(), "get_reply")) return;
      ReplyChange ch = move(from, to);
      if (to == ReplyStatus::kSent) ch.transport_message_id = "m1";
      if (from == ReplyStatus::kFailed && to == ReplyStatus::kApproved) ch.final_text = "by hand";
      auto r = h.store.transition_reply(id, ch);
      const std::string what = str(from) + " -> " + str(to);
      if (!t.expect_ok(r.status(), what)) continue;
      t.expect(r->status == to, what + ": the stored status is " + str(r->status));
      t.expect(r->version == before->version + 1, what + ": the version did not go up by one");
    }
  }
}

inline void illegal_transitions(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  int n = 0;
  for (ReplyStatus from : kAll) {
    const ReplyId id = ask(t, h, c->id, "q" + std::to_string(++n));
    if (id == 0 || !bring_to(t, h, id, from)) return;
    auto before = h.store.get_reply(id);
    if (!t.expect_ok(before.status(), "get_reply")) return;
    for (ReplyStatus to : kAll) {
      if (is_legal_transition(from, to)) continue;
      ReplyChange ch = move(from, to);
      ch.final_text = "text";
      t.expect_code(h.store.transition_reply(id, ch).status(), StatusCode::kFailedPrecondition,
                    str(from) + " -> " + str(to));
    }
    auto after = h.store.get_reply(id);
    t.expect(after.ok() && after->version == before->version && after->status == from,
             "a refused change changed reply in " + str(from));
  }
}

inline void compare_and_set(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0) return;
  t.expect_code(
      h.store.transition_reply(id, move(ReplyStatus::kGenerating, ReplyStatus::kPending)).status(),
      StatusCode::kAborted, "a change from a status the reply is not in");
  auto r = h.store.get_reply(id);
  if (!t.expect_ok(r.status(), "get_reply")) return;
  ReplyChange stale = move(ReplyStatus::kNew, ReplyStatus::kGenerating);
  stale.expected_version = r->version + 7;
  t.expect_code(h.store.transition_reply(id, stale).status(), StatusCode::kAborted,
                "a change with a stale version");
  stale.expected_version = r->version;
  t.expect_ok(h.store.transition_reply(id, stale).status(), "a change with the current version");
  t.expect_code(h.store.get_reply(987654321).status(), StatusCode::kNotFound,
                "get_reply of an unknown id");
  t.expect_code(
      h.store.transition_reply(987654321, move(ReplyStatus::kNew, ReplyStatus::kGenerating))
          .status(),
      StatusCode::kNotFound, "transition_reply of an unknown id");
}

// Each change through the store gives what apply_reply_change() gives for it.
inline void lifecycle_rules(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0) return;
  using S = ReplyStatus;
  std::vector<ReplyChange> script;
  {
    ReplyChange ch = move(S::kNew, S::kGenerating);
    ch.keep_claim = true;
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kGenerating, S::kFailed);
    ch.error = "timeout";
    ch.count_generation = true;
    ch.next_attempt_at = h.clock.now() + 30s;
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kFailed, S::kGenerating);
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kGenerating, S::kPending);
    ch.draft_text = "Draft, ✓";
    ch.provider = "primary";
    ch.providers_tried = 2;
    ch.error = "";
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kPending, S::kPending);
    ch.draft_text = "Draft, edited";
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kPending, S::kRejected);
    ch.actor = "operator:alice";
    ch.audit_action = "reject";
    ch.detail = "too curt";
    script.push_back(ch);
  }
  script.push_back(move(S::kRejected, S::kGenerating));
  {
    ReplyChange ch = move(S::kGenerating, S::kPending);
    ch.draft_text = "Second draft";
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kPending, S::kApproved);
    ch.final_text = "Final answer";
    ch.author = "alice";
    ch.actor = "operator:alice";
    ch.audit_action = "edit";
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kApproved, S::kApproved);
    ch.count_send = true;
    ch.error = "503";
    ch.next_attempt_at = h.clock.now() + 1h;
    script.push_back(ch);
  }
  {
    ReplyChange ch = move(S::kApproved, S::kSent);
    ch.transport_message_id = "msg-42";
    script.push_back(ch);
  }
  for (const ReplyChange& ch : script) {
    h.clock.advance(1500ms);
    auto current = h.store.get_reply(id);
    if (!t.expect_ok(current.status(), "get_reply")) return;
    auto want = apply_reply_change(*current, ch, h.clock.now());
    if (!t.expect_ok(want.status(), "apply_reply_change")) return;
    auto got = h.store.transition_reply(id, ch);
    const std::string what = str(ch.from) + " -> " + str(ch.to);
    if (!t.expect_ok(got.status(), what)) return;
    same_reply(t, want->reply, *got, what + " (as returned)");
    auto read = h.store.get_reply(id);
    if (t.expect_ok(read.status(), "get_reply"))
      same_reply(t, want->reply, *read, what + " (read)");
  }
}

inline void sent_joins_log(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0 || !bring_to(t, h, id, ReplyStatus::kApproved)) return;
  ReplyChange ch = move(ReplyStatus::kApproved, ReplyStatus::kSent);
  ch.transport_message_id = "msg-7";
  auto sent = h.store.transition_reply(id, ch);
  if (!t.expect_ok(sent.status(), "approved -> sent")) return;
  auto log = h.store.chat_history(c->id, {});
  if (!t.expect_ok(log.status(), "chat_history")) return;
  if (!t.expect(log->size() == 2, "the log does not hold the question and the answer")) return;
  const Message& answer = log->front();  // newest first
  t.expect(answer.role == Role::kAssistant, "the answer is not the assistant's");
  t.expect(answer.text == "a draft", "the answer's text is not the reply's final text");
  t.expect(answer.reply_id == id, "the answer does not name its reply");
  t.expect(answer.transport_message_id == "msg-7", "the answer lacks the channel's message id");
  t.expect(answer.session_id == sent->session_id, "the answer is in another session");

  // An operator's text: the operator's message.
  NewReply own;
  own.chat_id = c->id;
  own.status = ReplyStatus::kApproved;
  own.final_text = "From a human";
  own.author = "alice";
  auto made = h.store.create_reply(own);
  if (!t.expect_ok(made.status(), "create_reply (approved)")) return;
  t.expect(made->status == ReplyStatus::kApproved && made->final_text == own.final_text,
           "create_reply did not store an approved reply with its text");
  t.expect(made->decided_at.has_value(), "a reply created approved has no decided_at");
  t.expect_ok(
      h.store.transition_reply(made->id, move(ReplyStatus::kApproved, ReplyStatus::kSent)).status(),
      "sending the operator's reply");
  auto log2 = h.store.chat_history(c->id, {});
  if (t.expect_ok(log2.status(), "chat_history") && t.expect(!log2->empty(), "empty log")) {
    t.expect(log2->front().role == Role::kOperator && log2->front().author == "alice",
             "an operator's answer is not the operator's message");
  }

  // Nothing to send: refused, nothing joins the log.
  const ReplyId empty = ask(t, h, c->id, "again");
  if (empty == 0 || !bring_to(t, h, empty, ReplyStatus::kGenerating)) return;
  t.expect_ok(
      h.store.transition_reply(empty, move(ReplyStatus::kGenerating, ReplyStatus::kApproved))
          .status(),
      "generating -> approved without a draft");
  t.expect_code(
      h.store.transition_reply(empty, move(ReplyStatus::kApproved, ReplyStatus::kSent)).status(),
      StatusCode::kFailedPrecondition, "sending a reply without text");
  auto log3 = h.store.chat_history(c->id, {});
  t.expect(log3.ok() && log3->size() == 4, "a refused send wrote to the log");

  NewReply bad;
  bad.chat_id = c->id;
  bad.status = ReplyStatus::kPending;
  t.expect_code(h.store.create_reply(bad).status(), StatusCode::kInvalidArgument,
                "create_reply in status pending");
}

inline void audit_events(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0 || !bring_to(t, h, id, ReplyStatus::kPending)) return;
  auto probe = h.store.list_audit({});
  if (probe.status().code() == StatusCode::kUnimplemented) {
    t.skip("list_audit is not implemented (optional)");
    return;
  }
  ReplyChange ch = move(ReplyStatus::kPending, ReplyStatus::kApproved);
  ch.final_text = "Better";
  ch.actor = "operator:alice";
  ch.audit_action = "edit";
  ch.detail = "tone";
  if (!t.expect_ok(h.store.transition_reply(id, ch).status(), "pending -> approved")) return;
  AuditQuery q;
  q.reply_id = id;
  auto events = h.store.list_audit(q);
  if (!t.expect_ok(events.status(), "list_audit")) return;
  if (!t.expect(events->size() == 1, "the change wrote no audit event (or several)")) return;
  const AuditEvent& e = events->front();
  t.expect(e.actor == "operator:alice" && e.action == "edit" && e.detail == "tone",
           "the audit event lacks its actor, action or detail");
  t.expect(e.before == "a draft" && e.after == "Better", "the audit event's texts are wrong");
  t.expect(e.chat_id == c->id, "the audit event does not name the chat");
  t.expect(e.at == h.clock.now(), "the audit event is not dated by the store's clock");
  auto own = h.store.append_audit({0, {}, "admin:root", "settings", 0, 0, "", "", ""});
  t.expect_ok(own.status(), "append_audit");
}

inline void claims_and_leases(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0) return;
  ClaimRequest a;
  a.status = ReplyStatus::kNew;
  a.to = ReplyStatus::kGenerating;
  a.worker = "worker:a";
  a.lease = 10s;
  auto got = h.store.claim_replies(a);
  if (!t.expect_ok(got.status(), "claim_replies")) return;
  if (!t.expect(got->size() == 1, "the claim took nothing")) return;
  const Reply& r = got->front();
  t.expect(r.status == ReplyStatus::kGenerating, "the claim did not move the reply");
  t.expect(r.claimed_by == "worker:a", "the claim did not stamp the worker");
  t.expect(r.lease_until == h.clock.now() + 10s, "the lease does not run from now");
  t.expect(r.generation_attempts == 1, "a claim to generating did not count an attempt");

  ClaimRequest b = a;
  b.status = ReplyStatus::kGenerating;
  b.to.reset();
  b.worker = "worker:b";
  auto none = h.store.claim_replies(b);
  t.expect(none.ok() && none->empty(), "another worker took a reply under a lease");
  b.reply_id = id;
  t.expect_code(h.store.claim_replies(b).status(), StatusCode::kAborted,
                "claiming by id a reply another holds");
  t.expect_code(h.store.release_claim(id, "worker:b"), StatusCode::kAborted,
                "release_claim by another worker");
  ReplyChange held = move(ReplyStatus::kGenerating, ReplyStatus::kPending);
  held.actor = "operator:bob";
  t.expect_code(h.store.transition_reply(id, held).status(), StatusCode::kAborted,
                "a change by another actor while the lease runs");

  ClaimRequest own = b;
  own.reply_id.reset();
  own.worker = "worker:a";
  own.retake_own = false;
  auto mine = h.store.claim_replies(own);
  t.expect(mine.ok() && mine->empty(), "retake_own = false handed a worker its own reply");
  own.retake_own = true;
  mine = h.store.claim_replies(own);
  t.expect(mine.ok() && mine->size() == 1, "retake_own did not give a worker its own reply");

  h.clock.advance(11s);
  b.reply_id.reset();
  auto after = h.store.claim_replies(b);
  if (t.expect(after.ok() && after->size() == 1, "a reply whose lease ran out was not taken")) {
    t.expect(after->front().claimed_by == "worker:b", "the new claim names the old worker");
  }
  t.expect_ok(h.store.release_claim(id, "worker:b"), "release_claim");
  auto released = h.store.get_reply(id);
  t.expect(released.ok() && released->claimed_by.empty() && !released->lease_until,
           "release_claim left the claim");
  t.expect(released.ok() && released->status == ReplyStatus::kGenerating,
           "release_claim changed the status");

  // A status change releases the claim; keep_claim with extend_lease renews it.
  auto again = h.store.claim_replies(b);
  if (!t.expect(again.ok() && again->size() == 1, "claim after release")) return;
  ReplyChange renew = move(ReplyStatus::kGenerating, ReplyStatus::kGenerating);
  renew.keep_claim = true;
  renew.extend_lease = 60s;
  auto renewed = h.store.transition_reply(id, renew);
  if (t.expect_ok(renewed.status(), "renewing a lease")) {
    t.expect(renewed->claimed_by == "worker:b" && renewed->lease_until == h.clock.now() + 60s,
             "keep_claim with extend_lease did not renew the lease");
  }
  auto moved = h.store.transition_reply(id, move(ReplyStatus::kGenerating, ReplyStatus::kPending));
  t.expect(moved.ok() && moved->claimed_by.empty() && !moved->lease_until,
           "a status change kept the claim");

  ClaimRequest bad = a;
  bad.worker.clear();
  t.expect_code(h.store.claim_replies(bad).status(), StatusCode::kInvalidArgument,
                "a claim without a worker");
  bad = a;
  bad.to = ReplyStatus::kSent;
  t.expect_code(h.store.claim_replies(bad).status(), StatusCode::kFailedPrecondition,
                "a claim that moves new to sent");
}

inline void claim_order_and_filters(CheckContext& t, Harness& h) {
  auto c1 = chat(t, h, "c1");
  auto c2 = chat(t, h, "c2");
  auto other = chat(t, h, "c3", "elsewhere");
  if (!c1 || !c2 || !other) return;
  const ReplyId a1 = ask(t, h, c1->id, "first");
  const ReplyId a2 = ask(t, h, c1->id, "second");
  const ReplyId b1 = ask(t, h, c2->id, "other chat");
  const ReplyId x1 = ask(t, h, other->id, "other channel");
  if (a1 == 0 || a2 == 0 || b1 == 0 || x1 == 0) return;
  ClaimRequest q;
  q.status = ReplyStatus::kNew;
  q.to = ReplyStatus::kGenerating;
  q.worker = "w";
  q.limit = 10;
  q.head_of_chat_only = true;
  q.channel = "test";
  auto got = h.store.claim_replies(q);
  if (!t.expect_ok(got.status(), "claim_replies")) return;
  std::vector<ReplyId> ids;
  for (const Reply& r : *got) ids.push_back(r.id);
  t.expect(ids == std::vector<ReplyId>{a1, b1},
           "head_of_chat_only on channel test did not take exactly each chat's first reply, "
           "oldest first");
  // a1 approved: a2 is held back, unless past_approved.
  ReplyChange draft = move(ReplyStatus::kGenerating, ReplyStatus::kApproved);
  draft.draft_text = "answer";
  t.expect_ok(h.store.transition_reply(a1, draft).status(), "generating -> approved");
  q.chat_ids = {c1->id};
  auto held = h.store.claim_replies(q);
  t.expect(held.ok() && held->empty(), "an approved reply did not hold its chat's next back");
  q.past_approved = true;
  auto past = h.store.claim_replies(q);
  t.expect(past.ok() && past->size() == 1 && past->front().id == a2,
           "past_approved did not let the chat's next reply be claimed");

  // due_only: a reply whose next attempt has not come waits.
  ReplyChange later = move(ReplyStatus::kApproved, ReplyStatus::kApproved);
  later.next_attempt_at = h.clock.now() + 5min;
  t.expect_ok(h.store.transition_reply(a1, later).status(), "approved -> approved (backoff)");
  ClaimRequest send;
  send.status = ReplyStatus::kApproved;
  send.worker = "outbox";
  auto early = h.store.claim_replies(send);
  t.expect(early.ok() && early->empty(), "due_only took a reply before its next attempt");
  send.due_only = false;
  auto anyway = h.store.claim_replies(send);
  t.expect(anyway.ok() && anyway->size() == 1, "due_only = false did not take it");
  h.clock.advance(6min);
  send.due_only = true;
  send.worker = "outbox";
  auto due = h.store.claim_replies(send);
  t.expect(due.ok() && due->size() == 1 && due->front().id == a1,
           "a reply whose next attempt came was not taken");
}

inline void change_and_claim(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId first = ask(t, h, c->id, "one");
  const ReplyId second = ask(t, h, c->id, "two");
  if (first == 0 || second == 0 || !bring_to(t, h, first, ReplyStatus::kApproved)) return;
  ClaimRequest next;
  next.status = ReplyStatus::kNew;
  next.to = ReplyStatus::kGenerating;
  next.worker = "w";
  next.head_of_chat_only = true;
  next.chat_ids = {c->id};
  ReplyChange sent = move(ReplyStatus::kApproved, ReplyStatus::kSent);
  auto r = h.store.transition_and_claim(first, sent, std::span<const ClaimRequest>(&next, 1));
  if (!t.expect_ok(r.status(), "transition_and_claim")) return;
  t.expect(r->reply.status == ReplyStatus::kSent, "transition_and_claim did not apply the change");
  t.expect(r->claimed.size() == 1 && r->claimed[0].size() == 1 && r->claimed[0][0].id == second,
           "transition_and_claim did not claim the chat's next reply");
  t.expect(r->chat.id == c->id, "transition_and_claim did not give the chat of what it took");

  // A change that fails claims nothing.
  const ReplyId third = ask(t, h, c->id, "three");
  auto failed = h.store.transition_and_claim(first, sent, std::span<const ClaimRequest>(&next, 1));
  t.expect_code(failed.status(), StatusCode::kAborted, "transition_and_claim of a stale change");
  auto untouched = h.store.get_reply(third);
  t.expect(untouched.ok() && untouched->status == ReplyStatus::kNew,
           "a failed transition_and_claim claimed anyway");

  std::vector<ReplyStep> steps(2);
  steps[0].id = second;
  steps[0].change = move(ReplyStatus::kGenerating, ReplyStatus::kPending);
  steps[0].change.draft_text = "d";
  steps[1].id = first;
  steps[1].change = sent;  // stale: already sent
  auto each = h.store.transition_and_claim_each(steps);
  if (!t.expect(each.size() == 2, "transition_and_claim_each: one result per step")) return;
  t.expect(each[0].ok() && each[0]->reply.status == ReplyStatus::kPending,
           "transition_and_claim_each: the good step failed");
  t.expect_code(each[1].status(), StatusCode::kAborted,
                "transition_and_claim_each: the stale step");
}

inline void message_log(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  std::vector<MessageId> ids;
  for (int i = 0; i < 5; ++i) {
    NewMessage m;
    m.chat_id = c->id;
    m.role = i == 2 ? Role::kSystem : i == 3 ? Role::kTool : Role::kUser;
    m.text = "line " + std::to_string(i);
    m.reply_id = i == 3 ? 4242 : 0;  // a tool record names the draft that called it
    auto stored = h.store.append_message(m);
    if (!t.expect_ok(stored.status(), "append_message")) return;
    ids.push_back(stored->id);
    auto read = h.store.get_message(stored->id);
    t.expect(
        read.ok() && read->text == m.text && read->role == m.role && read->reply_id == m.reply_id,
        "get_message does not give back what was stored");
  }
  t.expect(ids[0] < ids[1] && ids[3] < ids[4], "message ids do not grow");
  auto session = h.store.open_session(c->id);
  if (!t.expect_ok(session.status(), "open_session")) return;
  auto recent = h.store.recent_messages(session->id, 3);
  if (t.expect_ok(recent.status(), "recent_messages") &&
      t.expect(recent->size() == 3, "recent_messages: not the 3 asked")) {
    t.expect(recent->front().text == "line 2" && recent->back().text == "line 4",
             "recent_messages: not the last ones, oldest first");
  }
  auto window = h.store.dialog_window(session->id, 2, ids[3]);
  if (t.expect_ok(window.status(), "dialog_window") &&
      t.expect(window->size() == 2, "dialog_window: not the 2 asked")) {
    t.expect(window->front().text == "line 0" && window->back().text == "line 1",
             "dialog_window: not the messages up to `upto` without system lines and tool records");
  }
  HistoryQuery q;
  q.limit = 2;
  auto page1 = h.store.chat_history(c->id, q);
  if (!t.expect_ok(page1.status(), "chat_history") ||
      !t.expect(page1->size() == 2, "chat_history: not the page size")) {
    return;
  }
  t.expect(page1->front().id == ids[4], "chat_history: not newest first");
  q.before_id = page1->back().id;
  auto page2 = h.store.chat_history(c->id, q);
  t.expect(page2.ok() && page2->size() == 2 && page2->front().id == ids[2],
           "chat_history: before_id does not give the next page");
  HistoryQuery search;
  search.search = "LINE 3";
  auto found = h.store.chat_history(c->id, search);
  t.expect(found.ok() && found->size() == 1 && found->front().id == ids[3],
           "chat_history: search is not a case-blind substring match");
}

inline void wait_for_change_wakes(CheckContext& t, Harness& h) {
  const std::uint64_t start = h.store.wait_for_change(0, 0ms);
  const std::uint64_t idle = h.store.wait_for_change(start, 0ms);
  t.expect(idle == start, "wait_for_change reported a change when nothing was written");
  std::atomic<bool> returned{false};
  std::uint64_t woke = start;
  constexpr auto kTimeout = 30s;
  std::thread waiter([&] {
    woke = h.store.wait_for_change(start, kTimeout);
    returned = true;
  });
  // Let the waiter block (if it has not, it sees the write at once: no harm).
  std::this_thread::sleep_for(50ms);
  const auto wrote = std::chrono::steady_clock::now();
  auto c = chat(t, h, "woken");
  waiter.join();
  const auto waited = std::chrono::steady_clock::now() - wrote;
  if (!c) return;
  t.expect(returned && woke != start, "wait_for_change did not report the write");
  t.expect(waited < kTimeout, "wait_for_change was not woken by the write (it timed out)");
}

inline void optional_settings(CheckContext& t, Harness& h) {
  auto missing = h.store.get_setting("conformance.none");
  if (missing.status().code() == StatusCode::kUnimplemented) {
    t.skip("settings are not implemented (optional)");
    return;
  }
  t.expect_code(missing.status(), StatusCode::kNotFound, "get_setting of a key never set");
  t.expect_ok(h.store.put_setting("conformance.key", "värde"), "put_setting");
  t.expect_ok(h.store.put_setting("conformance.key", "value 2"), "put_setting again");
  auto read = h.store.get_setting("conformance.key");
  t.expect(read.ok() && *read == "value 2", "get_setting does not give the latest value");
}

inline void reply_actions(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0 || !bring_to(t, h, id, ReplyStatus::kGenerating)) return;
  ReplyChange draft = move(ReplyStatus::kGenerating, ReplyStatus::kPending);
  draft.draft_text = "Here it is";
  draft.attachments = std::vector<Attachment>{
      {"/srv/files/deck.pdf", "Презентация.pdf", "application/pdf", "Our deck"},
      {"/srv/files/prices.xlsx", "", "", ""}};
  draft.deferred_calls =
      std::vector<DeferredToolCall>{{"call_1", "stop_contact", "{\"reason\": \"asked\"}"}};
  if (!t.expect_ok(h.store.transition_reply(id, draft).status(), "a draft with attachments")) {
    return;
  }
  auto read = h.store.get_reply(id);
  if (!t.expect_ok(read.status(), "get_reply")) return;
  const bool files = read->attachments.size() == 2 &&
                     read->attachments[0].path == "/srv/files/deck.pdf" &&
                     read->attachments[0].file_name == "Презентация.pdf" &&
                     read->attachments[0].mime_type == "application/pdf" &&
                     read->attachments[0].caption == "Our deck" &&
                     read->attachments[1].path == "/srv/files/prices.xlsx" &&
                     read->attachments[1].file_name.empty();
  t.expect(files, "the reply's attachments did not come back as stored");
  const bool calls = read->deferred_calls.size() == 1 &&
                     read->deferred_calls[0].call_id == "call_1" &&
                     read->deferred_calls[0].tool == "stop_contact" &&
                     read->deferred_calls[0].arguments == "{\"reason\": \"asked\"}";
  t.expect(calls, "the reply's deferred tool calls did not come back as stored");
  // Running the calls clears them, the attachments stay; a rejection clears both.
  ReplyChange ran = move(ReplyStatus::kPending, ReplyStatus::kApproved);
  ran.deferred_calls = std::vector<DeferredToolCall>{};
  if (!t.expect_ok(h.store.transition_reply(id, ran).status(), "approving")) return;
  read = h.store.get_reply(id);
  if (!t.expect_ok(read.status(), "get_reply")) return;
  t.expect(read->deferred_calls.empty() && read->attachments.size() == 2,
           "clearing the deferred calls did not keep the attachments alone");
  const ReplyId other = ask(t, h, c->id, "again");
  if (other == 0 || !bring_to(t, h, other, ReplyStatus::kGenerating)) return;
  draft.draft_text = "Another";
  if (!t.expect_ok(h.store.transition_reply(other, draft).status(), "a second draft")) return;
  if (!t.expect_ok(
          h.store.transition_reply(other, move(ReplyStatus::kPending, ReplyStatus::kRejected))
              .status(),
          "rejecting it")) {
    return;
  }
  read = h.store.get_reply(other);
  t.expect(read.ok() && read->attachments.empty() && read->deferred_calls.empty(),
           "a rejected draft kept its attachments or deferred calls");
}

inline void optional_contacts(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  t.expect(!c->opted_out_at && c->notes.empty(), "a new chat is opted out or has notes");
  ChatChange notes;
  notes.notes = "Met at the fair; wants a demo";
  notes.title = "Ann Lee";
  notes.actor = "operator:alice";
  auto changed = h.store.update_chat(c->id, notes);
  if (changed.status().code() == StatusCode::kUnimplemented) {
    t.skip("update_chat is not implemented (optional)");
    return;
  }
  if (!t.expect_ok(changed.status(), "update_chat with notes and a title")) return;
  t.expect(changed->notes == *notes.notes && changed->title == "Ann Lee",
           "update_chat did not return the chat as changed");
  h.clock.advance(5s);
  const Timestamp opted_at = h.clock.now();
  ChatChange out;
  out.opted_out = true;
  changed = h.store.update_chat(c->id, out);
  if (!t.expect_ok(changed.status(), "opting out")) return;
  t.expect(changed->opted_out_at.has_value(), "the opt-out was not set");
  h.clock.advance(5s);
  changed = h.store.update_chat(c->id, out);  // again: the first time stays
  auto read = h.store.get_chat(c->id);
  if (!t.expect_ok(read.status(), "get_chat")) return;
  t.expect(read->opted_out_at &&
               std::chrono::abs(*read->opted_out_at - opted_at) < std::chrono::seconds(1),
           "opting out again moved the opt-out's time, or it was not kept");
  t.expect(read->notes == *notes.notes && read->title == "Ann Lee",
           "the notes or the title were not kept");
  // A refreshing upsert from the channel keeps the contact's notes and opt-out.
  auto again = chat(t, h);
  t.expect(again && again->opted_out_at && again->notes == *notes.notes,
           "upsert_chat lost the notes or the opt-out");
  out.opted_out = false;
  changed = h.store.update_chat(c->id, out);
  t.expect(changed.ok() && !changed->opted_out_at, "opting in again did not clear the opt-out");
  t.expect_code(h.store.update_chat(c->id, ChatChange{}).status(), StatusCode::kInvalidArgument,
                "update_chat with nothing to change");
  t.expect_code(h.store.update_chat(c->id + 1000, out).status(), StatusCode::kNotFound,
                "update_chat of an unknown chat");
  auto audit = h.store.list_audit({.chat_id = c->id});
  if (audit.ok()) {
    const bool written = std::any_of(audit->begin(), audit->end(), [](const AuditEvent& e) {
      return e.action == "contact" && e.actor == "operator:alice";
    });
    t.expect(written, "update_chat with an actor wrote no audit event \"contact\"");
  }
}

inline void optional_stats(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0 || !bring_to(t, h, id, ReplyStatus::kSent)) return;
  auto s = h.store.stats({});
  if (s.status().code() == StatusCode::kUnimplemented) {
    t.skip("stats is not implemented (optional)");
    return;
  }
  if (!t.expect_ok(s.status(), "stats")) return;
  t.expect(s->replies_by_status[static_cast<std::size_t>(ReplyStatus::kSent)] == 1,
           "stats: the sent reply is not counted");
}

inline void text_limits(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const ReplyId id = ask(t, h, c->id);
  if (id == 0 || !bring_to(t, h, id, ReplyStatus::kGenerating)) return;
  ReplyChange huge = move(ReplyStatus::kGenerating, ReplyStatus::kPending);
  huge.draft_text = std::string(kMaxReplyTextBytes + 1, 'x');
  t.expect_code(h.store.transition_reply(id, huge).status(), StatusCode::kInvalidArgument,
                "a draft larger than kMaxReplyTextBytes");
  ReplyChange fine = move(ReplyStatus::kGenerating, ReplyStatus::kPending);
  fine.draft_text = "naïve café — 日本語 — 🙂";
  auto r = h.store.transition_reply(id, fine);
  t.expect(r.ok() && r->draft_text == *fine.draft_text, "a UTF-8 draft did not survive intact");
}

// ---- the memory's records (optional) -------------------------------------------------------

// Marks the check skipped when the store keeps no memory records (`s` is kUnimplemented).
inline bool no_memory(CheckContext& t, const Status& s) {
  if (s.code() != StatusCode::kUnimplemented) return false;
  t.skip("memory records are not implemented (optional)");
  return true;
}

// A message in `chat`'s open session, for the memory's records to point at.
inline MessageId say(CheckContext& t, Harness& h, ChatId chat, const std::string& text,
                     Role role = Role::kUser) {
  NewMessage m;
  m.chat_id = chat;
  m.role = role;
  m.text = text;
  auto stored = h.store.append_message(m);
  if (!t.expect_ok(stored.status(), "append_message")) return 0;
  return stored->id;
}

inline RecallItem recall(ChatId chat, const std::string& key, const std::string& terms,
                         MessageId message = 0) {
  RecallItem item;
  item.chat_id = chat;
  item.kind = "message";
  item.key = key;
  item.message_id = message;
  item.text = "text of " + key;
  item.terms = terms;
  return item;
}

// The keys of `hits`, in order.
inline std::vector<std::string> keys(const std::vector<RecallHit>& hits) {
  std::vector<std::string> out;
  for (const RecallHit& hit : hits) out.push_back(hit.item.key);
  return out;
}

inline Result<std::vector<RecallHit>> find_terms(Harness& h, ChatId chat,
                                                 std::vector<std::string> terms,
                                                 MessageId before = 0) {
  TermQuery q;
  q.chat_id = chat;
  q.terms = std::move(terms);
  q.before_message_id = before;
  return h.store.search_recall_terms(q);
}

inline void messages_after(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  const MessageId first = say(t, h, c->id, "one");
  say(t, h, c->id, "a system line", Role::kSystem);
  say(t, h, c->id, "{\"tool\": \"order_lookup\"}", Role::kTool);
  const MessageId second = say(t, h, c->id, "two", Role::kAssistant);
  const MessageId third = say(t, h, c->id, "three");
  auto session = h.store.open_session(c->id);
  if (first == 0 || third == 0 || !t.expect_ok(session.status(), "open_session")) return;
  auto next = h.store.restart_session(c->id);
  if (!t.expect_ok(next.status(), "restart_session")) return;
  say(t, h, c->id, "in the next session");
  auto all = h.store.messages_after(session->id, 0, 10);
  if (t.expect_ok(all.status(), "messages_after")) {
    std::vector<MessageId> ids;
    for (const Message& m : *all) ids.push_back(m.id);
    t.expect(ids == std::vector<MessageId>{first, second, third},
             "messages_after(0) is not the session's dialog without system lines and tool records, "
             "oldest first");
  }
  auto later = h.store.messages_after(session->id, first, 1);
  t.expect(later.ok() && later->size() == 1 && later->front().id == second,
           "messages_after(first, limit 1) is not the next message of the dialog");
  t.expect_code(h.store.messages_after(session->id, 0, 0).status(), StatusCode::kInvalidArgument,
                "messages_after with limit 0");
  t.expect_code(h.store.messages_after(987654321, 0, 10).status(), StatusCode::kNotFound,
                "messages_after of an unknown session");
}

inline void summary_versions(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  auto session = h.store.open_session(c->id);
  if (!t.expect_ok(session.status(), "open_session")) return;
  auto none = h.store.latest_session_summary(session->id);
  if (no_memory(t, none.status())) return;
  t.expect_code(none.status(), StatusCode::kNotFound, "latest_session_summary before any");
  const MessageId upto = say(t, h, c->id, "what the summary covers");
  NewSessionSummary n;
  n.session_id = session->id;
  n.content = "Ann asked about her order — заказ 42";
  n.last_message_id = upto;
  auto v1 = h.store.add_session_summary(n);
  if (!t.expect_ok(v1.status(), "add_session_summary (version 1)")) return;
  t.expect(v1->version == 1 && v1->chat_id == c->id && v1->session_id == session->id &&
               v1->content == n.content && v1->last_message_id == upto && v1->id > 0,
           "the first summary is not version 1 with what was given");
  t.expect_code(h.store.add_session_summary(n).status(), StatusCode::kAborted,
                "a summary built on version 0 when version 1 exists");
  n.expected_version = 1;
  n.content = "version two";
  auto v2 = h.store.add_session_summary(n);
  if (!t.expect_ok(v2.status(), "add_session_summary (version 2)")) return;
  t.expect(v2->version == 2, "the second summary is not version 2");
  auto latest = h.store.latest_session_summary(session->id);
  t.expect(latest.ok() && latest->version == 2 && latest->content == "version two",
           "latest_session_summary is not the newest version");
  auto listed = h.store.list_session_summaries(session->id);
  t.expect(listed.ok() && listed->size() == 2 && listed->front().version == 1 &&
               listed->back().version == 2 && listed->front().content.ends_with("заказ 42"),
           "list_session_summaries is not every version, oldest first, intact");
  auto read = h.store.get_session(session->id);
  t.expect(read.ok() && read->summary == "version two" && read->summary_upto == upto,
           "Session::summary does not show the newest version");
  n.content.clear();
  n.expected_version = 2;
  t.expect_code(h.store.add_session_summary(n).status(), StatusCode::kInvalidArgument,
                "a summary without content");
  n.content = "x";
  n.session_id = 987654321;
  n.expected_version = 0;
  t.expect_code(h.store.add_session_summary(n).status(), StatusCode::kNotFound,
                "a summary of an unknown session");
}

inline NewMemoryJob job(const std::string& key, const std::string& kind = "summary",
                        ChatId chat = 0) {
  NewMemoryJob j;
  j.kind = kind;
  j.key = key;
  j.chat_id = chat;
  j.payload = R"({"session": 1})";
  return j;
}

inline JobClaim claim_of(const std::string& worker, int limit = 10,
                         std::chrono::milliseconds lease = 10s) {
  JobClaim q;
  q.worker = worker;
  q.limit = limit;
  q.lease = lease;
  return q;
}

inline void summary_finishes_job(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  auto session = h.store.open_session(c->id);
  if (!t.expect_ok(session.status(), "open_session")) return;
  auto queued =
      h.store.enqueue_job(job("summary:" + std::to_string(session->id), "summary", c->id));
  if (no_memory(t, queued.status())) return;
  if (!t.expect_ok(queued.status(), "enqueue_job")) return;
  auto claimed = h.store.claim_jobs(claim_of("worker:a"));
  if (!t.expect(claimed.ok() && claimed->size() == 1, "the job was not claimed")) return;
  NewSessionSummary n;
  n.session_id = session->id;
  n.content = "a summary";
  n.job_id = queued->id;
  n.worker = "worker:b";
  t.expect_code(h.store.add_session_summary(n).status(), StatusCode::kAborted,
                "a summary finishing a job its worker does not hold");
  t.expect_code(h.store.latest_session_summary(session->id).status(), StatusCode::kNotFound,
                "a refused summary was written anyway");
  n.worker = "worker:a";
  auto added = h.store.add_session_summary(n);
  if (!t.expect_ok(added.status(), "add_session_summary finishing the job")) return;
  auto done = h.store.get_job(queued->id);
  if (t.expect_ok(done.status(), "get_job")) {
    t.expect(done->done_at.has_value() && done->claimed_by.empty(),
             "the summary did not finish its job");
  }
  n.expected_version = 1;
  t.expect_code(h.store.add_session_summary(n).status(), StatusCode::kAborted,
                "a second summary finishing a job already done");
}

inline void jobs_dedup_and_claims(CheckContext& t, Harness& h) {
  auto a = h.store.enqueue_job(job("summary:1"));
  if (no_memory(t, a.status())) return;
  if (!t.expect_ok(a.status(), "enqueue_job")) return;
  t.expect(a->id > 0 && a->kind == "summary" && a->key == "summary:1" && !a->done_at &&
               a->attempts == 0 && a->claimed_by.empty() && a->next_attempt_at == h.clock.now(),
           "a new job is not stored as given, due now");
  h.clock.advance(1s);
  auto again = h.store.enqueue_job(job("summary:1"));
  t.expect(again.ok() && again->id == a->id, "a second job with an unfinished key was queued");
  auto embed = h.store.enqueue_job(job("embed:1", "embed"));
  NewMemoryJob later = job("summary:later");
  later.not_before = h.clock.now() + 1min;
  auto delayed = h.store.enqueue_job(later);
  if (!t.expect_ok(embed.status(), "enqueue_job") ||
      !t.expect_ok(delayed.status(), "enqueue_job (not before)")) {
    return;
  }
  t.expect_code(h.store.enqueue_job(job("")).status(), StatusCode::kInvalidArgument,
                "a job without a key");

  JobClaim embeds = claim_of("worker:e");
  embeds.kinds = {"embed"};
  auto e = h.store.claim_jobs(embeds);
  t.expect(e.ok() && e->size() == 1 && e->front().id == embed->id,
           "a claim of kind embed did not take exactly the embed job");
  t.expect_ok(h.store.finish_job(embed->id, "worker:e"), "finish_job");
  auto got = h.store.claim_jobs(claim_of("worker:a"));
  if (!t.expect_ok(got.status(), "claim_jobs")) return;
  if (t.expect(got->size() == 1 && got->front().id == a->id,
               "a claim did not take exactly the one due job that nobody holds")) {
    t.expect(got->front().claimed_by == "worker:a" && got->front().attempts == 1 &&
                 got->front().lease_until == h.clock.now() + 10s,
             "a claimed job does not carry its worker, attempt and lease");
  }
  auto stored = h.store.get_job(a->id);
  t.expect(stored.ok() && stored->claimed_by == "worker:a" && stored->attempts == 1,
           "the claim was not stored");
  auto none = h.store.claim_jobs(claim_of("worker:b"));
  t.expect(none.ok() && none->empty(), "a held job was handed to a second worker");
  t.expect_code(h.store.finish_job(a->id, "worker:b"), StatusCode::kAborted,
                "finish_job by a worker that does not hold the job");
  t.expect_ok(h.store.finish_job(a->id, "worker:a"), "finish_job");
  t.expect_code(h.store.finish_job(a->id, "worker:a"), StatusCode::kAborted,
                "finish_job of a job already done");
  auto fresh = h.store.enqueue_job(job("summary:1"));
  t.expect(fresh.ok() && fresh->id != a->id, "a finished job's key did not take a new job");

  h.clock.advance(2min);
  auto due = h.store.claim_jobs(claim_of("worker:c"));
  if (t.expect_ok(due.status(), "claim_jobs")) {
    std::vector<JobId> ids;
    for (const MemoryJob& j : *due) ids.push_back(j.id);
    // The new job has been due since it was queued, the delayed one only since a minute later.
    t.expect(ids == std::vector<JobId>{fresh->id, delayed->id},
             "claim_jobs did not take the due jobs oldest due first");
  }
  auto open = h.store.list_jobs("summary", false, 100);
  t.expect(open.ok() && open->size() == 2, "list_jobs without done ones");
  auto every = h.store.list_jobs("", true, 100);
  t.expect(every.ok() && every->size() == 4 && every->front().id > every->back().id,
           "list_jobs with done ones, newest first");
  t.expect_code(h.store.get_job(987654321).status(), StatusCode::kNotFound, "get_job unknown");
  t.expect_code(h.store.claim_jobs(claim_of("")).status(), StatusCode::kInvalidArgument,
                "a job claim without a worker");
}

inline void job_leases(CheckContext& t, Harness& h) {
  auto a = h.store.enqueue_job(job("embed:7", "embed"));
  if (no_memory(t, a.status())) return;
  if (!t.expect_ok(a.status(), "enqueue_job")) return;
  auto first = h.store.claim_jobs(claim_of("worker:a", 1, 10s));
  if (!t.expect(first.ok() && first->size() == 1, "the job was not claimed")) return;
  h.clock.advance(5s);
  auto early = h.store.claim_jobs(claim_of("worker:b"));
  t.expect(early.ok() && early->empty(), "a job was retaken before its lease ran out");
  t.expect_ok(h.store.extend_job_lease(a->id, "worker:a", 10s), "extend_job_lease");
  t.expect_code(h.store.extend_job_lease(a->id, "worker:b", 10s), StatusCode::kAborted,
                "extend_job_lease by a worker that does not hold the job");
  h.clock.advance(8s);  // 13 s after the claim: the first lease would have run out
  auto extended = h.store.claim_jobs(claim_of("worker:b"));
  t.expect(extended.ok() && extended->empty(), "an extended lease did not keep the job");
  h.clock.advance(3s);
  auto taken = h.store.claim_jobs(claim_of("worker:b"));
  if (t.expect(taken.ok() && taken->size() == 1, "a job whose lease ran out was not retaken")) {
    t.expect(taken->front().claimed_by == "worker:b" && taken->front().attempts == 2,
             "the retaken job does not name its new worker and its second attempt");
  }
  t.expect_code(h.store.finish_job(a->id, "worker:a"), StatusCode::kAborted,
                "finish_job by the worker whose lease ran out and was retaken");
  t.expect_code(h.store.extend_job_lease(a->id, "worker:a", 10s), StatusCode::kAborted,
                "extend_job_lease by the worker whose job was retaken");
  t.expect_ok(h.store.finish_job(a->id, "worker:b"), "finish_job by the new holder");
  h.clock.advance(1h);
  auto after = h.store.claim_jobs(claim_of("worker:c"));
  t.expect(after.ok() && after->empty(), "a finished job was claimed again");
}

inline void job_retries(CheckContext& t, Harness& h) {
  auto a = h.store.enqueue_job(job("embed:9", "embed"));
  if (no_memory(t, a.status())) return;
  if (!t.expect_ok(a.status(), "enqueue_job")) return;
  auto got = h.store.claim_jobs(claim_of("worker:a"));
  if (!t.expect(got.ok() && got->size() == 1, "the job was not claimed")) return;
  JobRetry retry;
  retry.error = "the embedding server answered 503";
  retry.next_attempt_at = h.clock.now() + 1min;
  t.expect_code(h.store.retry_job(a->id, "worker:b", retry), StatusCode::kAborted,
                "retry_job by a worker that does not hold the job");
  t.expect_ok(h.store.retry_job(a->id, "worker:a", retry), "retry_job");
  auto stored = h.store.get_job(a->id);
  if (t.expect_ok(stored.status(), "get_job")) {
    t.expect(stored->claimed_by.empty() && !stored->lease_until && !stored->done_at &&
                 stored->last_error == retry.error &&
                 stored->next_attempt_at == retry.next_attempt_at,
             "retry_job did not release the job with its error and next attempt");
  }
  auto early = h.store.claim_jobs(claim_of("worker:b"));
  t.expect(early.ok() && early->empty(), "a job was claimed before its next attempt");
  h.clock.advance(61s);
  auto second = h.store.claim_jobs(claim_of("worker:b"));
  if (!t.expect(second.ok() && second->size() == 1 && second->front().attempts == 2,
                "a job was not claimed again when its next attempt came")) {
    return;
  }
  JobRetry give_up;
  give_up.error = "the text cannot be embedded";
  give_up.give_up = true;
  t.expect_ok(h.store.retry_job(a->id, "worker:b", give_up), "retry_job giving up");
  auto gone = h.store.get_job(a->id);
  t.expect(gone.ok() && gone->done_at.has_value() && gone->last_error == give_up.error &&
               gone->claimed_by.empty(),
           "a job given up is not done with its error kept");
  h.clock.advance(1h);
  auto never = h.store.claim_jobs(claim_of("worker:c"));
  t.expect(never.ok() && never->empty(), "a job given up was claimed again");
  auto requeued = h.store.enqueue_job(job("embed:9", "embed"));
  t.expect(requeued.ok() && requeued->id != a->id, "a job given up kept its key from a new one");
}

inline void recall_terms(CheckContext& t, Harness& h) {
  auto c1 = chat(t, h, "c1");
  auto c2 = chat(t, h, "c2");
  if (!c1 || !c2) return;
  const MessageId m1 = say(t, h, c1->id, "заказ заказ");
  const MessageId m2 = say(t, h, c1->id, "заказ доставк");
  const MessageId m3 = say(t, h, c1->id, "возврат");
  const MessageId m4 = say(t, h, c1->id, "привет");
  const MessageId other = say(t, h, c2->id, "заказ возврат");
  std::vector<RecallItem> items = {recall(c1->id, "message:1", "заказ заказ", m1),
                                   recall(c1->id, "message:2", "заказ доставк", m2),
                                   recall(c1->id, "message:3", "возврат сегодн", m3),
                                   recall(c1->id, "message:4", "привет мир", m4),
                                   recall(c2->id, "message:5", "заказ возврат", other)};
  // More items with the common word, so that it is the common one in the chat.
  for (int i = 0; i < 6; ++i) {
    items.push_back(
        recall(c1->id, "fact:" + std::to_string(i), "заказ номер " + std::to_string(i), m4));
  }
  const Status added = h.store.add_recall_items(items);
  if (no_memory(t, added)) return;
  if (!t.expect_ok(added, "add_recall_items")) return;
  auto count = h.store.count_recall_items(c1->id);
  t.expect(count.ok() && *count == 10, "count_recall_items of the chat");
  // The same key again: nothing added, nothing changed.
  RecallItem dup = recall(c1->id, "message:1", "другое", m1);
  t.expect_ok(h.store.add_recall_items(std::span<const RecallItem>(&dup, 1)),
              "add_recall_items with a key the chat has");
  count = h.store.count_recall_items(c1->id);
  t.expect(count.ok() && *count == 10, "an item with a key the chat has was added again");
  auto all = h.store.count_recall_items(0);
  t.expect(all.ok() && *all == 11, "count_recall_items of all chats");

  auto hits = find_terms(h, c1->id, {"заказ"});
  if (t.expect_ok(hits.status(), "search_recall_terms")) {
    t.expect(hits->size() == 8, "a search did not find each of the chat's items with the term");
    for (const RecallHit& hit : *hits) {
      t.expect(hit.item.chat_id == c1->id, "a search returned another chat's item");
    }
    t.expect(!hits->empty() && hits->front().item.key == "message:1" &&
                 hits->front().item.text == "text of message:1" &&
                 hits->front().item.message_id == m1,
             "the item with the term twice does not rank first, as stored");
    for (std::size_t i = 1; i < hits->size(); ++i) {
      t.expect((*hits)[i - 1].score >= (*hits)[i].score, "hits are not best first");
    }
  }
  auto rare = find_terms(h, c1->id, {"заказ", "возврат"});
  t.expect(rare.ok() && !rare->empty() && rare->front().item.key == "message:3",
           "the item with the chat's rare word does not rank above those with its common one");
  auto none = find_terms(h, c2->id, {"доставк", "привет"});
  t.expect(none.ok() && none->empty(), "a search found another chat's items");
  auto theirs = find_terms(h, c2->id, {"заказ"});
  t.expect(theirs.ok() && keys(*theirs) == std::vector<std::string>{"message:5"},
           "the other chat's search is not exactly its own item");
  auto before = find_terms(h, c1->id, {"заказ"}, m2);
  t.expect(before.ok() && keys(*before) == std::vector<std::string>{"message:1"},
           "before_message_id did not keep only the items from earlier messages");
  TermQuery limited;
  limited.chat_id = c1->id;
  limited.terms = {"заказ"};
  limited.limit = 3;
  auto three = h.store.search_recall_terms(limited);
  t.expect(three.ok() && three->size() == 3, "search_recall_terms did not keep to its limit");
  auto nothing = find_terms(h, c1->id, {});
  t.expect(nothing.ok() && nothing->empty(), "a search without terms found something");
  auto unknown = find_terms(h, c1->id, {"несуществующ"});
  t.expect(unknown.ok() && unknown->empty(), "a search for an absent word found something");
  RecallItem bad = recall(0, "k", "x");
  t.expect_code(h.store.add_recall_items(std::span<const RecallItem>(&bad, 1)),
                StatusCode::kInvalidArgument, "a recall item without a chat");
}

inline RecallItem with_vector(RecallItem item, std::vector<float> v, std::string model = "m1") {
  item.vector = std::move(v);
  item.vector_model = std::move(model);
  return item;
}

inline void recall_vectors(CheckContext& t, Harness& h) {
  auto c1 = chat(t, h, "c1");
  auto c2 = chat(t, h, "c2");
  if (!c1 || !c2) return;
  const MessageId m1 = say(t, h, c1->id, "one");
  const MessageId m2 = say(t, h, c1->id, "two");
  std::vector<RecallItem> items = {
      with_vector(recall(c1->id, "near", "", m1), {1.0F, 0.1F, 0.0F}),
      with_vector(recall(c1->id, "far", "", m2), {0.0F, 1.0F, 0.0F}),
      with_vector(recall(c1->id, "middle", "", m2), {1.0F, 1.0F, 0.0F}),
      with_vector(recall(c1->id, "other model", "", m1), {1.0F, 0.0F, 0.0F}, "m2"),
      with_vector(recall(c1->id, "other length", "", m1), {1.0F, 0.0F}),
      with_vector(recall(c2->id, "other chat", "", m1), {1.0F, 0.0F, 0.0F})};
  const Status added = h.store.add_recall_items(items);
  if (no_memory(t, added)) return;
  if (!t.expect_ok(added, "add_recall_items with vectors")) return;
  VectorQuery q;
  q.chat_id = c1->id;
  q.vector = {2.0F, 0.0F, 0.0F};
  q.model = "m1";
  auto hits = h.store.search_recall_vectors(q);
  if (t.expect_ok(hits.status(), "search_recall_vectors")) {
    t.expect(keys(*hits) == std::vector<std::string>{"near", "middle", "far"},
             "vector search is not the chat's vectors of the model, most similar first");
    if (hits->size() == 3) {
      t.expect(
          std::abs(hits->at(1).score - std::sqrt(0.5)) < 1e-5 && std::abs(hits->at(2).score) < 1e-5,
          "the scores are not the cosine similarities");
      t.expect(
          hits->front().item.vector == items[0].vector && hits->front().item.vector_model == "m1",
          "a hit does not carry its vector as stored");
    }
  }
  q.limit = 1;
  auto one = h.store.search_recall_vectors(q);
  t.expect(one.ok() && keys(*one) == std::vector<std::string>{"near"}, "limit 1");
  q.limit = 20;
  q.before_message_id = m2;
  auto before = h.store.search_recall_vectors(q);
  t.expect(before.ok() && keys(*before) == std::vector<std::string>{"near"},
           "before_message_id in a vector search");
  q.before_message_id = 0;
  q.model = "m2";
  auto m2hits = h.store.search_recall_vectors(q);
  t.expect(m2hits.ok() && keys(*m2hits) == std::vector<std::string>{"other model"},
           "the model filter of a vector search");
  q.chat_id = c2->id;
  q.model = "m1";
  auto theirs = h.store.search_recall_vectors(q);
  t.expect(theirs.ok() && keys(*theirs) == std::vector<std::string>{"other chat"},
           "a vector search found another chat's items");
  q.vector.clear();
  t.expect_code(h.store.search_recall_vectors(q).status(), StatusCode::kInvalidArgument,
                "a vector search without a vector");
}

inline void recall_backlog_and_cache(CheckContext& t, Harness& h) {
  auto c = chat(t, h);
  if (!c) return;
  std::vector<RecallItem> items = {recall(c->id, "a", "x"), recall(c->id, "b", "y"),
                                   recall(c->id, "c", "z")};
  const Status added = h.store.add_recall_items(items);
  if (no_memory(t, added)) return;
  if (!t.expect_ok(added, "add_recall_items")) return;
  auto backlog = h.store.recall_items_without_vector("m1", 10);
  if (!t.expect_ok(backlog.status(), "recall_items_without_vector")) return;
  std::vector<std::string> waiting;
  for (const RecallItem& item : *backlog) waiting.push_back(item.key);
  t.expect(waiting == std::vector<std::string>{"a", "b", "c"},
           "the backlog is not every item without a vector, oldest first");
  if (backlog->size() != 3) return;
  std::vector<std::pair<RecallItemId, std::vector<float>>> vectors = {
      {backlog->at(0).id, {0.5F, 0.25F}}, {backlog->at(1).id, {1.0F, 0.0F}}, {987654321, {1.0F}}};
  t.expect_ok(h.store.set_recall_vectors(vectors, "m1"), "set_recall_vectors (an unknown id too)");
  auto rest = h.store.recall_items_without_vector("m1", 10);
  t.expect(rest.ok() && rest->size() == 1 && rest->front().key == "c",
           "set_recall_vectors did not take the items out of the backlog");
  auto limited = h.store.recall_items_without_vector("m2", 2);
  t.expect(limited.ok() && limited->size() == 2, "the backlog of another model, limit 2");
  auto all_m2 = h.store.recall_items_without_vector("m2", 10);
  t.expect(all_m2.ok() && all_m2->size() == 3, "vectors of m1 count as missing for m2");
  VectorQuery q;
  q.chat_id = c->id;
  q.vector = {1.0F, 0.0F};
  q.model = "m1";
  auto hits = h.store.search_recall_vectors(q);
  t.expect(hits.ok() && keys(*hits) == std::vector<std::string>{"b", "a"},
           "the vectors set later are not searched");

  const std::vector<std::string> digests = {"d1", "d2"};
  auto empty = h.store.cached_embeddings("m1", digests);
  if (t.expect_ok(empty.status(), "cached_embeddings")) {
    t.expect(empty->size() == 2 && empty->at(0).empty() && empty->at(1).empty(),
             "cached_embeddings found what was never cached");
  }
  std::vector<std::pair<std::string, std::vector<float>>> entries = {{"d1", {0.125F, -2.5F, 3.0F}}};
  t.expect_ok(h.store.cache_embeddings("m1", entries), "cache_embeddings");
  auto cached = h.store.cached_embeddings("m1", digests);
  t.expect(cached.ok() && cached->size() == 2 && cached->at(0) == entries[0].second &&
               cached->at(1).empty(),
           "cached_embeddings does not give back what was cached, one entry per digest");
  auto other = h.store.cached_embeddings("m2", digests);
  t.expect(other.ok() && other->size() == 2 && other->at(0).empty(),
           "a cached embedding was found under another model");
}

inline void memory_erasure(CheckContext& t, Harness& h) {
  auto gone = chat(t, h, "gone");
  auto kept = chat(t, h, "kept");
  if (!gone || !kept) return;
  auto gone_session = h.store.open_session(gone->id);
  auto kept_session = h.store.open_session(kept->id);
  if (!t.expect_ok(gone_session.status(), "open_session") ||
      !t.expect_ok(kept_session.status(), "open_session")) {
    return;
  }
  const MessageId gm = say(t, h, gone->id, "my secret");
  const MessageId km = say(t, h, kept->id, "my question");
  NewSessionSummary s;
  s.session_id = gone_session->id;
  s.content = "summary of the secret";
  if (no_memory(t, h.store.add_session_summary(s).status())) return;
  s.session_id = kept_session->id;
  t.expect_ok(h.store.add_session_summary(s).status(), "add_session_summary");
  t.expect_ok(h.store.enqueue_job(job("summary:gone", "summary", gone->id)).status(), "enqueue");
  t.expect_ok(h.store.enqueue_job(job("summary:kept", "summary", kept->id)).status(), "enqueue");
  std::vector<RecallItem> items = {
      with_vector(recall(gone->id, "g1", "секрет паспорт", gm), {1.0F, 0.0F}),
      recall(gone->id, "g2", "секрет", gm),
      with_vector(recall(kept->id, "k1", "секрет вопрос", km), {1.0F, 0.0F})};
  t.expect_ok(h.store.add_recall_items(items), "add_recall_items");
  auto erased = h.store.erase_chat(gone->id);
  if (erased.status().code() == StatusCode::kUnimplemented) {
    t.skip("erase_chat is not implemented (optional)");
    return;
  }
  if (!t.expect_ok(erased.status(), "erase_chat")) return;
  t.expect(erased->memory_records == 4,
           "erase_chat did not count the summary, the job and the two recall items as memory "
           "records (" +
               std::to_string(erased->memory_records) + ")");
  auto count = h.store.count_recall_items(gone->id);
  t.expect(count.ok() && *count == 0, "the erased chat's recall items are left");
  auto found = find_terms(h, gone->id, {"секрет"});
  t.expect(found.ok() && found->empty(), "a search still finds the erased chat's items");
  VectorQuery vq;
  vq.chat_id = gone->id;
  vq.vector = {1.0F, 0.0F};
  vq.model = "m1";
  auto near = h.store.search_recall_vectors(vq);
  t.expect(near.ok() && near->empty(), "a vector search still finds the erased chat's items");
  t.expect_code(h.store.latest_session_summary(gone_session->id).status(), StatusCode::kNotFound,
                "the erased chat's summary is left");
  auto jobs = h.store.list_jobs("", true, 100);
  t.expect(jobs.ok() && jobs->size() == 1 && jobs->front().chat_id == kept->id,
           "the erased chat's job is left, or the other's went with it");
  auto theirs = find_terms(h, kept->id, {"секрет"});
  t.expect(theirs.ok() && keys(*theirs) == std::vector<std::string>{"k1"},
           "erasing a chat touched another chat's recall items");
  t.expect(h.store.latest_session_summary(kept_session->id).ok(),
           "erasing a chat touched another chat's summary");

  // Retention: the recall items of deleted messages go; those of kept messages stay.
  h.clock.advance(24h);
  const MessageId fresh = say(t, h, kept->id, "a newer question");
  RecallItem newer = recall(kept->id, "k2", "вопрос нов", fresh);
  t.expect_ok(h.store.add_recall_items(std::span<const RecallItem>(&newer, 1)), "add_recall_items");
  auto retained = h.store.delete_older_than(h.clock.now() - 1h);
  if (retained.status().code() == StatusCode::kUnimplemented) return;
  if (!t.expect_ok(retained.status(), "delete_older_than")) return;
  t.expect(retained->memory_records >= 1, "delete_older_than counted no memory record");
  auto left = find_terms(h, kept->id, {"вопрос"});
  t.expect(left.ok() && keys(*left) == std::vector<std::string>{"k2"},
           "delete_older_than did not remove the recall items of the messages it deleted, or "
           "removed the others");
}

inline const std::vector<NamedCheck<Harness>>& all() {
  static const std::vector<NamedCheck<Harness>> checks = {
      {"chats and sessions", &chats_and_sessions},
      {"inbound is idempotent on the dedup key", &idempotent_inbound},
      {"every legal transition is applied", &legal_transitions},
      {"illegal transitions are refused with kFailedPrecondition", &illegal_transitions},
      {"a stale status or version is refused with kAborted", &compare_and_set},
      {"the stored reply is what apply_reply_change gives", &lifecycle_rules},
      {"the sent answer joins the message log", &sent_joins_log},
      {"a change with an audit action writes its event", &audit_events},
      {"claims are leases", &claims_and_leases},
      {"claims keep chat order, channel and backoff", &claim_order_and_filters},
      {"transition_and_claim and its batch", &change_and_claim},
      {"the message log", &message_log},
      {"wait_for_change wakes on a write", &wait_for_change_wakes},
      {"settings (optional)", &optional_settings},
      {"statistics (optional)", &optional_stats},
      {"a reply keeps its attachments and deferred tool calls", &reply_actions},
      {"contacts: notes and the opt-out (optional)", &optional_contacts},
      {"text limits and UTF-8", &text_limits},
      {"messages after a watermark", &messages_after},
      {"memory: summary versions and their compare-and-set (optional)", &summary_versions},
      {"memory: a summary finishes its job (optional)", &summary_finishes_job},
      {"memory: jobs are deduplicated by key, claims never shared (optional)",
       &jobs_dedup_and_claims},
      {"memory: job leases run out and are retaken (optional)", &job_leases},
      {"memory: job retry, backoff and giving up (optional)", &job_retries},
      {"memory: recall by terms, within one chat, BM25 first (optional)", &recall_terms},
      {"memory: recall by vectors, cosine, of one model and chat (optional)", &recall_vectors},
      {"memory: the embedder's backlog and the embedding cache (optional)",
       &recall_backlog_and_cache},
      {"memory: erasure and retention cover the memory's records (optional)", &memory_erasure},
  };
  return checks;
}

}  // namespace store_checks

// The names of the checks, in the order run_message_store_conformance() runs them.
inline std::vector<std::string> message_store_check_names() {
  return check_names(store_checks::all());
}

// Runs the check called `name` against a new store from `factory`.
inline CheckResult run_message_store_check(std::string_view name,
                                           const MessageStoreFactory& factory) {
  return run_clocked_store_check(store_checks::all(), name, factory);
}

// Runs every check, each against a new store; one result per check, in order.
inline std::vector<CheckResult> run_message_store_conformance(const MessageStoreFactory& factory) {
  return run_every_check(store_checks::all(), [&](std::string_view name) {
    return run_message_store_check(name, factory);
  });
}

}  // namespace llmassist::testing
