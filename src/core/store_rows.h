// Internal: the shipped stores' row readers. Each reads one row of the column list the store
// selects for it (the same order in every store), through a `Row` that has int64(col),
// text(col), time(col), opt_time(col) and floats(col), as the SQLite store's Statement and the
// PostgreSQL store's RowView do. Booleans are read as integers (0 or 1).
//
// Thread-safety: pure functions.
#pragma once

#include "core/store_support.h"
#include "llmassist/memory_records.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist::detail {

// id, channel, external_id, title, username, mode, blocked, created_at, updated_at,
// opted_out_at, notes
template <typename Row>
Chat read_chat_row(const Row& s) {
  Chat c;
  c.id = s.int64(0);
  c.channel = s.text(1);
  c.external_id = s.text(2);
  c.title = s.text(3);
  c.username = s.text(4);
  c.mode = parse_chat_mode(s.text(5)).value_or(ChatMode::kBot);
  c.blocked = s.int64(6) != 0;
  c.created_at = s.time(7);
  c.updated_at = s.time(8);
  c.opted_out_at = s.opt_time(9);
  c.notes = s.text(10);
  return c;
}

// id, chat_id, started_at, closed_at, summary, summary_upto
template <typename Row>
Session read_session_row(const Row& s) {
  Session x;
  x.id = s.int64(0);
  x.chat_id = s.int64(1);
  x.started_at = s.time(2);
  x.closed_at = s.opt_time(3);
  x.summary = s.text(4);
  x.summary_upto = s.int64(5);
  return x;
}

// id, chat_id, session_id, role, text, author, created_at, dedup_key (or ''),
// transport_message_id, reply_id
template <typename Row>
Message read_message_row(const Row& s) {
  Message m;
  m.id = s.int64(0);
  m.chat_id = s.int64(1);
  m.session_id = s.int64(2);
  m.role = parse_role(s.text(3)).value_or(Role::kSystem);
  m.text = s.text(4);
  m.author = s.text(5);
  m.created_at = s.time(6);
  m.dedup_key = s.text(7);
  m.transport_message_id = s.text(8);
  m.reply_id = s.int64(9);
  return m;
}

// id, chat_id, session_id, question_id, status, draft_text, final_text, author, provider,
// providers_tried, error, generation_attempts, send_attempts, version, claimed_by, lease_until,
// next_attempt_at, transport_message_id, created_at, updated_at, generated_at, decided_at,
// sent_at, actions
template <typename Row>
Reply read_reply_row(const Row& s) {
  Reply r;
  r.id = s.int64(0);
  r.chat_id = s.int64(1);
  r.session_id = s.int64(2);
  r.question_id = s.int64(3);
  r.status = parse_reply_status(s.text(4)).value_or(ReplyStatus::kFailed);
  r.draft_text = s.text(5);
  r.final_text = s.text(6);
  r.author = s.text(7);
  r.provider = s.text(8);
  // column 9, providers_tried, feeds the statistics only
  r.error = s.text(10);
  r.generation_attempts = static_cast<int>(s.int64(11));
  r.send_attempts = static_cast<int>(s.int64(12));
  r.version = s.int64(13);
  r.claimed_by = s.text(14);
  r.lease_until = s.opt_time(15);
  r.next_attempt_at = s.opt_time(16);
  r.transport_message_id = s.text(17);
  r.created_at = s.time(18);
  r.updated_at = s.time(19);
  r.generated_at = s.opt_time(20);
  r.decided_at = s.opt_time(21);
  r.sent_at = s.opt_time(22);
  read_reply_actions(s.text(23), r);
  return r;
}

// id, at, actor, action, reply_id, chat_id, before, after, detail
template <typename Row>
AuditEvent read_audit_row(const Row& s) {
  AuditEvent e;
  e.id = s.int64(0);
  e.at = s.time(1);
  e.actor = s.text(2);
  e.action = s.text(3);
  e.reply_id = s.int64(4);
  e.chat_id = s.int64(5);
  e.before = s.text(6);
  e.after = s.text(7);
  e.detail = s.text(8);
  return e;
}

// id, session_id, chat_id, version, content, last_message_id, created_at
template <typename Row>
SessionSummary read_summary_row(const Row& s) {
  SessionSummary x;
  x.id = s.int64(0);
  x.session_id = s.int64(1);
  x.chat_id = s.int64(2);
  x.version = static_cast<int>(s.int64(3));
  x.content = s.text(4);
  x.last_message_id = s.int64(5);
  x.created_at = s.time(6);
  return x;
}

// id, kind, key, chat_id, payload, attempts, claimed_by, lease_until, next_attempt_at,
// last_error, created_at, done_at
template <typename Row>
MemoryJob read_job_row(const Row& s) {
  MemoryJob j;
  j.id = s.int64(0);
  j.kind = s.text(1);
  j.key = s.text(2);
  j.chat_id = s.int64(3);
  j.payload = s.text(4);
  j.attempts = static_cast<int>(s.int64(5));
  j.claimed_by = s.text(6);
  j.lease_until = s.opt_time(7);
  j.next_attempt_at = s.time(8);
  j.last_error = s.text(9);
  j.created_at = s.time(10);
  j.done_at = s.opt_time(11);
  return j;
}

// id, chat_id, session_id, kind, key, message_id, text, terms, vector, vector_model, created_at.
// The vector may be damaged: kDataLoss then.
template <typename Row>
Result<RecallItem> read_recall_row(const Row& s) {
  RecallItem r;
  r.id = s.int64(0);
  r.chat_id = s.int64(1);
  r.session_id = s.int64(2);
  r.kind = s.text(3);
  r.key = s.text(4);
  r.message_id = s.int64(5);
  r.text = s.text(6);
  r.terms = s.text(7);
  LLMASSIST_ASSIGN_OR_RETURN(r.vector, s.floats(8));
  r.vector_model = s.text(9);
  r.created_at = s.time(10);
  return r;
}

}  // namespace llmassist::detail
