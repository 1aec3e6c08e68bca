// Test fixture: a SQLite store in a temporary folder on a manual clock (or a store of the
// caller's on that clock), a ModerationQueue over it, and helpers that put replies where an
// operator finds them (pending, with the memory its draft used, failed).
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/memory_manager.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/temp_dir.h"

namespace llmassist::testing {

struct QueueFixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<MessageStore> store;
  std::unique_ptr<ModerationQueue> queue;

  QueueFixture() {
    SqliteStoreOptions options;
    options.path = dir.file("store.db");
    options.clock = clock;
    options.logger = null_logger();
    options.sync = SqliteSync::kNormal;
    auto opened = open_sqlite_store(options);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    store = std::move(opened).value();
    make_queue();
  }

  // Over `given`, which was opened on `given_clock`.
  QueueFixture(std::shared_ptr<MessageStore> given, std::shared_ptr<ManualClock> given_clock)
      : clock(std::move(given_clock)), store(std::move(given)) {
    make_queue();
  }

  Chat chat(const std::string& external, const std::string& title = "") {
    auto c =
        store->upsert_chat({"telegram", external, title.empty() ? "User " + external : title, ""});
    REQUIRE(c.ok());
    return *c;
  }

  // A question from the chat; its reply stays `new`.
  ReplyId ask(ChatId chat_id, const std::string& text) {
    InboundMessage m;
    m.chat_id = chat_id;
    m.text = text;
    m.author = "user";
    auto r = append_inbound(*store, m);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    clock->advance(std::chrono::seconds(1));
    return r->reply_id;
  }

  void generating(ReplyId id) {
    ClaimRequest q;
    q.status = ReplyStatus::kNew;
    q.to = ReplyStatus::kGenerating;
    q.worker = "bot:test";
    q.reply_id = id;
    auto r = store->claim_replies(q);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    REQUIRE(r->size() == 1);
  }

  // A question whose draft waits for an operator.
  ReplyId pending(ChatId chat_id, const std::string& question, const std::string& draft) {
    return drafted(chat_id, question, draft, nullptr);
  }

  // A question whose draft waits for an operator, stored as the Assistant stores one: with an
  // audit event "draft" whose detail is memory_used_json(`memory`), in the same commit.
  ReplyId pending_with_memory(ChatId chat_id, const std::string& question, const std::string& draft,
                              const Context& memory) {
    return drafted(chat_id, question, draft, &memory);
  }

  // A question no provider could answer.
  ReplyId failed(ChatId chat_id, const std::string& question) {
    const ReplyId id = ask(chat_id, question);
    generating(id);
    ReplyChange ch;
    ch.from = ReplyStatus::kGenerating;
    ch.to = ReplyStatus::kFailed;
    ch.error = "every provider failed";
    auto r = store->transition_reply(id, ch);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    return id;
  }

  Reply reply(ReplyId id) {
    auto r = store->get_reply(id);
    REQUIRE(r.ok());
    return *r;
  }

  std::vector<AuditEvent> audit(ReplyId id) {
    AuditQuery q;
    q.reply_id = id;
    auto events = store->list_audit(q);
    REQUIRE(events.ok());
    return *events;
  }

 private:
  void make_queue() {
    ModerationQueueOptions q;
    q.clock = clock;
    q.logger = null_logger();
    queue = make_moderation_queue(store, q);
  }

  ReplyId drafted(ChatId chat_id, const std::string& question, const std::string& draft,
                  const Context* memory) {
    const ReplyId id = ask(chat_id, question);
    generating(id);
    ReplyChange ch;
    ch.from = ReplyStatus::kGenerating;
    ch.to = ReplyStatus::kPending;
    ch.draft_text = draft;
    ch.provider = "mock";
    if (memory != nullptr) {
      ch.actor = "bot:test";
      ch.audit_action = "draft";
      ch.detail = memory_used_json(*memory);
      REQUIRE(!ch.detail.empty());
    }
    auto r = store->transition_reply(id, ch);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    return id;
  }
};

}  // namespace llmassist::testing
