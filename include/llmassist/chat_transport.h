// ChatTransport: a messaging channel (Telegram, the console, later e-mail). Receives inbound
// events and delivers outbound messages, edits, typing indicators and buttons.
//
// Contract:
// - start() begins receiving and returns at once. Inbound events are given to the handler in
//   order, several at once when they arrived together (a page of getUpdates), so that it can
//   store them in one transaction; the transport confirms an event to its channel (Telegram's
//   getUpdates offset) only after the handler reported it persisted, so a crash between receipt
//   and persistence loses nothing. An event the handler did not persist is offered again later,
//   with those after it. Events the transport cannot parse are logged and confirmed (skipped),
//   so one poisoned update never stalls the channel.
// - Sending is asynchronous: send(), edit() and the rest return at once and call `done` exactly
//   once, on the transport's thread (or inline, before returning, when the channel answers at
//   once, as the console does: callers must not hold a lock their callback takes). The transport
//   paces itself within the channel's limits and retries transient failures itself; the Status in
//   `done` is final: kPermissionDenied when the user blocked the bot (do not retry),
//   kResourceExhausted with retry_after() when the channel keeps refusing, kInvalidArgument for a
//   message the channel will not take.
// - stop() stops receiving, fails queued sends with kCancelled, and returns when no callback
//   runs any more.
//
// Thread-safety: all methods may be called from many threads at once. The handler is called from
// one transport thread at a time, in the channel's order.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

enum class InboundKind : std::uint8_t {
  kMessage,        // a user's text (or a caption)
  kEditedMessage,  // the user edited an earlier message
  kCallback,       // an inline button was pressed
  kBlocked,        // the user blocked the bot, or removed it from the group
  kUnblocked,      // ...and came back
};

struct LLMASSIST_API InboundEvent {
  InboundKind kind = InboundKind::kMessage;
  std::string channel;           // the transport's channel name
  std::string dedup_key;         // unique per event on this channel ("telegram:812345")
  std::string chat_external_id;  // the chat, in the channel's terms
  std::string chat_title;
  std::string user_id;    // the sender, in the channel's terms
  std::string user_name;  // display name
  std::string username;   // handle, without "@"
  std::string text;       // message text or caption; empty for media without caption
  // What the message carries besides text ("photo", "voice", "document", "sticker", ...); empty
  // for a plain text message. A message with media and no caption arrives with an empty `text`
  // and this set, so the assistant can say it reads text only instead of ignoring the user.
  std::string media;
  std::string message_id;           // the channel's id of this message
  std::string reply_to_message_id;  // the message it replies to, if any
  std::string callback_id;          // for kCallback: answer it with answer_callback()
  std::string callback_data;        // for kCallback: the button's data
  // The forum topic the message belongs to (Telegram's message_thread_id in a forum
  // supergroup); empty outside topics. An answer goes to the same topic.
  std::string thread_id;
  Timestamp sent_at{};
};

// What an InboundHandler did with the events it was given: the first `persisted` of them are
// stored; when that is fewer than all, `status` says why the next one is not, and it and the
// rest are to be offered again.
struct LLMASSIST_API InboundAck {
  std::size_t persisted = 0;
  Status status;
  // For each persisted event, the reply it opened (0: none), when the handler tells (the
  // Assistant does); empty otherwise.
  std::vector<ReplyId> replies;
};

// Handles inbound events, in order: one, or several that arrived together.
using InboundHandler = std::function<InboundAck(std::span<const InboundEvent>)>;

struct LLMASSIST_API Button {
  std::string text;
  std::string callback_data;  // at most 64 bytes on Telegram
};

enum class TextFormat : std::uint8_t {
  kPlain,     // sent as is
  kMarkdown,  // the LLM's Markdown, rendered for the channel; falls back to plain text when the
              // channel refuses the formatting
};

struct LLMASSIST_API OutboundMessage {
  std::string chat_external_id;
  std::string text;
  TextFormat format = TextFormat::kPlain;
  std::vector<std::vector<Button>> buttons;  // rows of inline buttons; empty: none
  std::string reply_to_message_id;           // quote this message, when not empty
  std::string thread_id;                     // the forum topic to post in; empty: none
  // The stored reply this message delivers; 0 for anything else (a notice, an operators' post).
  ReplyId reply_id = 0;
  // Files sent after the text, in order (Telegram: sendDocument, each with its caption). The
  // text may then be empty. SentMessage::message_ids has the files' messages after the text's.
  std::vector<Attachment> attachments;
};

struct LLMASSIST_API SentMessage {
  // The channel's ids of what was sent: more than one when a long text was split.
  std::vector<std::string> message_ids;
};

using SendCallback = std::function<void(Result<SentMessage>)>;
using DoneCallback = std::function<void(Status)>;

class LLMASSIST_API ChatTransport {
 public:
  ChatTransport() = default;
  virtual ~ChatTransport() = default;
  ChatTransport(const ChatTransport&) = delete;
  ChatTransport& operator=(const ChatTransport&) = delete;

  // "telegram", "console", ...: the channel name stored with chats and dedup keys.
  [[nodiscard]] virtual std::string_view channel() const = 0;

  // Starts receiving; kFailedPrecondition when already started, or the channel's error when it
  // cannot be reached or refuses the credentials.
  virtual Status start(InboundHandler handler) = 0;
  virtual void stop() = 0;

  virtual void send(OutboundMessage message, SendCallback done) = 0;
  // Replaces the text (and buttons) of a message sent earlier.
  virtual void edit(std::string chat_external_id, std::string message_id, OutboundMessage message,
                    DoneCallback done) = 0;
  // Shows "typing…" for a few seconds.
  virtual void send_typing(std::string chat_external_id, DoneCallback done) = 0;
  // Acknowledges a button press, optionally with a short notice to the user.
  virtual void answer_callback(std::string callback_id, std::string text, DoneCallback done) = 0;
  // Streams a partial answer: shows `text` as the current state of draft `draft_id` in the chat
  // (Telegram's sendMessageDraft, or an edited message where that is missing). The final answer
  // is still delivered with send().
  virtual void send_draft(std::string chat_external_id, std::int64_t draft_id, std::string text,
                          DoneCallback done) = 0;
};

// Runs send() and waits for its result. Must not be called from the transport's own callbacks.
[[nodiscard]] LLMASSIST_API Result<SentMessage> send_sync(ChatTransport& transport,
                                                          OutboundMessage message);

}  // namespace llmassist
