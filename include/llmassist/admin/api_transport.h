// ApiTransport: the REST API's channel ("api") as a ChatTransport, so that an Assistant drafts,
// moderates, redrafts and delivers the answers of POST /v1/chat/handle (and of /create and
// /repeat on an API chat) like those of any other channel.
//
// Contract:
// - ask() gives a question to the Assistant serving this transport (its inbound handler: the
//   question is stored with its reply before ask() goes on) and calls `done` once, when the
//   reply has come as far as the caller can wait for: `sent` (the answer is in the store, and
//   in the chat's log), `pending` (an operator decides first), `cancelled` (answered together
//   with another), or failed (kUnavailable). A question the chat's mode gives no reply (a
//   person answers it) is done at once, with reply_id 0. The wait ends after `timeout` with
//   kDeadlineExceeded; the reply goes on, and GET /api/replies/{id} shows it later.
// - The reply is followed in the store, so it does not matter which process drafts or sends it:
//   the claims and leases of the store keep two processes serving this channel from drafting
//   one reply twice.
// - send() delivers an answer by keeping it: it is the store's (GET /api/replies/{id}), and the
//   Assistant marks it sent. Typing, edits, button answers and partial answers have no one to
//   go to and succeed at once.
//
// Thread-safety: every method from any thread; the handler is called from one at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "llmassist/chat_transport.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API ApiQuestion {
  std::string user_id;  // the caller's user, as it names them
  std::string chat_id;  // the caller's chat: the external id of a chat on the "api" channel
  std::string text;     // not empty
};

// Where a question's reply stood when ask() was done.
struct LLMASSIST_API ApiAnswer {
  ReplyId reply_id = 0;  // 0: none was opened (the chat is in operator mode)
  ReplyStatus status = ReplyStatus::kNew;
  std::string answer;    // the text sent; empty unless status is kSent
  std::string provider;  // the provider that drafted it
};

using ApiAnswerCallback = std::function<void(Result<ApiAnswer>)>;

class LLMASSIST_API ApiTransport : public ChatTransport {
 public:
  // kUnavailable in `done` when no Assistant serves the transport (not started, or stopped).
  virtual void ask(ApiQuestion question, ApiAnswerCallback done) = 0;
};

struct LLMASSIST_API ApiTransportOptions {
  std::shared_ptr<MessageStore> store;  // required: the store of the Assistant serving it
  // How long ask() waits for the reply. Default 60 s.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // How often waiting questions are looked at when no change of the store woke them (a change
  // another process made is seen within its poll interval anyway). Default 1 s.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// Errors: kInvalidArgument without a store.
[[nodiscard]] LLMASSIST_API Result<std::shared_ptr<ApiTransport>> make_api_transport(
    ApiTransportOptions options);

}  // namespace llmassist
