// Pure functions for the Telegram Bot API: parsing updates and method responses, measuring and
// splitting texts the way Telegram counts them, rendering LLM Markdown to Telegram's HTML, and
// building request bodies. No network, no clock, no state: the TelegramTransport composes them.
//
// Nothing here throws. Every input is treated as hostile: malformed JSON, wrong types, invalid
// UTF-8 and absurd nesting come back as a Status (or a skipped update), never as a crash.
//
// Thread-safety: free functions over values; safe to call from many threads at once.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/chat_transport.h"
#include "llmassist/status.h"

namespace llmassist::telegram {

// The channel name written into every InboundEvent ("telegram").
inline constexpr std::string_view kChannel = "telegram";
// Telegram's limit for the text of one message, in UTF-16 code units after entity parsing.
inline constexpr std::size_t kMaxMessageUtf16 = 4096;
// Telegram's limit for the caption of a file, in the same units.
inline constexpr std::size_t kMaxCaptionUtf16 = 1024;
// The largest file a bot may upload through the Bot API (sendDocument): 50 MB.
inline constexpr std::uint64_t kMaxUploadBytes = std::uint64_t{50} << 20;

// ---- updates ---------------------------------------------------------------------------------

// One update that became an event, with its update_id: the transport confirms the offset event
// by event, as each is persisted.
struct ParsedUpdate {
  std::int64_t update_id = 0;
  InboundEvent event;
};

// One update that was not turned into an event, for the log. It is still confirmed: an update
// we cannot use must not come back forever.
struct SkippedUpdate {
  std::optional<std::int64_t> update_id;  // empty when the update had no usable update_id
  // Why: "unsupported update kind: chat_boost", "malformed: message is not an object".
  std::string reason;
};

// What one getUpdates response held, in the channel's order.
struct UpdateBatch {
  // The highest update_id seen, skipped updates included; empty when none had one. The next
  // getUpdates offset is max_update_id + 1 once every event up to it is persisted.
  std::optional<std::int64_t> max_update_id;
  std::vector<ParsedUpdate> events;
  std::vector<SkippedUpdate> skipped;
};

// Parses the body of a getUpdates response. Fails only when the body as a whole is unusable:
// not JSON (kInvalidArgument), or "ok": false (the Bot API error mapped like
// parse_method_response: 409 kFailedPrecondition, 401 kUnauthenticated, 429 kResourceExhausted
// with retry_after, ...). A single update that cannot be parsed is skipped, never fails the
// batch.
[[nodiscard]] Result<UpdateBatch> parse_updates(std::string_view get_updates_body);

// Parses one Update object (the webhook receives one per POST). Errors say why the update yields
// no event: kUnimplemented for kinds we do not handle ("unsupported update kind: channel_post",
// "service message: pinned_message"), kInvalidArgument for a malformed one ("malformed: ...").
// Either way the update is to be acknowledged and dropped.
//
// Mapping: message → kMessage (text, else caption, else empty text with `media` set: a user who
// sends a photo must not be ignored); edited_message → kEditedMessage; callback_query →
// kCallback; my_chat_member with the bot kicked/left → kBlocked, member/administrator →
// kUnblocked. Service messages (pins, topics opened, payments, ...) and every other update kind
// are skipped. A callback carries no time of its own (sent_at stays empty); one from an inline
// message names no chat, so its chat is the user's private chat (same id as the user).
[[nodiscard]] Result<ParsedUpdate> parse_update(const nlohmann::json& update);
[[nodiscard]] Result<ParsedUpdate> parse_update(std::string_view update_json);

// ---- method responses ------------------------------------------------------------------------

// The useful part of a successful Bot API call.
struct MethodResult {
  // The "result" value, serialized ("true", {...}), when asked for (`keep_result`).
  std::string result_json;
  std::string message_id;  // result.message_id when the result is a Message; else empty
  // result.document.file_id when the result is a Message with a document (sendDocument): the
  // id that sends the same file again without uploading it; else empty.
  std::string file_id;
};

// Parses the response to any Bot API method. Errors, by the Bot API's error_code (or the HTTP
// status when the body is not JSON):
//   400 "can't parse entities" → kInvalidArgument, reason "parse_entities" (resend as plain text)
//   400 "message is not modified" → kInvalidArgument, reason "not_modified"
//   400 group migrated to a supergroup → kFailedPrecondition, reason "chat_migrated"
//   400 "wrong file identifier", "wrong remote file identifier", "file reference ..." →
//       kInvalidArgument, reason "bad_file_id" (a file_id Telegram no longer takes: upload)
//   400 other → kInvalidArgument;  401 → kUnauthenticated;  404 → kNotFound
//   403 → kPermissionDenied (reason "blocked" when the user blocked the bot or it was kicked)
//   409 → kFailedPrecondition;  429 → kResourceExhausted with retry_after from
//   parameters.retry_after;  5xx or no HTTP status → kUnavailable
// Messages quote Telegram's description (truncated, with anything token-like redacted).
// `keep_result`: fill result_json too (a send needs only the message id).
[[nodiscard]] Result<MethodResult> parse_method_response(std::string_view body, int http_status,
                                                         bool keep_result = false);

// ---- request bodies --------------------------------------------------------------------------

// The JSON body of sendMessage. `message.text` is sent as is: with `html` it must already be
// Telegram HTML (render_markdown_html) and parse_mode "HTML" is set. A reply keeps working when
// the quoted message was deleted (allow_sending_without_reply). `disable_link_preview` drops the
// preview card of the first link. kInvalidArgument for what Telegram would refuse anyway: no
// chat, an empty text, a plain text over 4096 UTF-16 units, a button without text or with
// callback data outside 1..64 bytes.
[[nodiscard]] Result<std::string> build_send_message(const OutboundMessage& message, bool html,
                                                     bool disable_link_preview = false);

// The JSON body of editMessageText for message `message_id` in message.chat_external_id; same
// rules as build_send_message (reply and thread are ignored: an edit cannot move a message).
[[nodiscard]] Result<std::string> build_edit_message_text(const OutboundMessage& message,
                                                          std::string_view message_id, bool html,
                                                          bool disable_link_preview = false);

// ---- documents -------------------------------------------------------------------------------

// One field of a request sent as multipart/form-data: its name, and its value as the Bot API
// reads a form (numbers in decimal, objects and arrays as JSON text).
struct FormField {
  std::string name;
  std::string value;
};

// The parameters of sendDocument other than `document`: chat_id, message_thread_id, caption
// (fit_caption; none when empty), reply_parameters and reply_markup, by the rules of
// build_send_message (message.text is not used). For an upload, with the file as one more part.
[[nodiscard]] Result<std::vector<FormField>> build_send_document_fields(
    const OutboundMessage& message, std::string_view caption);

// The JSON body of sendDocument sending `file_id`, a file Telegram has (a previous upload's
// MethodResult::file_id), with the same parameters as build_send_document_fields.
[[nodiscard]] Result<std::string> build_send_document(const OutboundMessage& message,
                                                      std::string_view caption,
                                                      std::string_view file_id);

// A caption Telegram takes: sanitize_utf8, and when longer than kMaxCaptionUtf16 units cut
// (as split_message cuts, at a word where it can) and ended with "…", so that it fits.
[[nodiscard]] std::string fit_caption(std::string_view caption);

// The name a file is shown under: Attachment::file_name, else the path's last segment;
// sanitize_utf8, with control characters replaced by '_'; "file" when nothing is left.
[[nodiscard]] std::string attachment_file_name(const Attachment& attachment);

// ---- UTF-16 measures over UTF-8 text ---------------------------------------------------------
//
// Telegram counts lengths and entity offsets in UTF-16 code units: a character outside the Basic
// Multilingual Plane (most emoji) counts 2. In the functions below a byte that does not start a
// valid UTF-8 sequence counts as one unit, as the U+FFFD that replaces it would.

[[nodiscard]] std::size_t utf16_length(std::string_view utf8) noexcept;

// The bytes of `utf8` covering the UTF-16 units [offset, offset + length): a message entity's
// text. Clamped to the text; never splits a UTF-8 sequence (a code point is included when its
// first unit lies in the range).
[[nodiscard]] std::string_view utf16_substr(std::string_view utf8, std::size_t offset,
                                            std::size_t length) noexcept;

// The UTF-16 length of the text Telegram shows for `html` (tags dropped, each entity one
// character): what its 4096 limit applies to in HTML parse mode.
[[nodiscard]] std::size_t html_visible_utf16_length(std::string_view html) noexcept;

// `utf8` with every invalid sequence and NUL replaced by U+FFFD (detail::storable_text): what
// Telegram accepts.
[[nodiscard]] std::string sanitize_utf8(std::string_view utf8);

// ---- splitting -------------------------------------------------------------------------------

// Splits `text` into parts of at most `max_utf16` UTF-16 units each (values below 2 count as 2,
// so that any character fits). Cuts at the last paragraph break (blank line) that fits, else a
// line break, a sentence end (". ", "! ", "? "), a space, and only as a last resort inside a
// word; a separator is preferred only when it leaves the part at least half full. The newlines
// or spaces at a cut are dropped; every other byte is kept, in order. Never cuts inside a UTF-8
// sequence or a surrogate pair. No empty parts: an empty text gives none.
[[nodiscard]] std::vector<std::string> split_message(std::string_view text,
                                                     std::size_t max_utf16 = kMaxMessageUtf16);

// split_message for Markdown that will be rendered part by part: a cut inside a fenced code block
// closes the fence at the end of the part and reopens it (same language) in the next, so each
// part renders on its own. The visible text of a rendered part is never longer than the part's
// Markdown without the added fences, so it stays within `max_utf16`.
//
// This is how long HTML messages are made: split the Markdown, then render each part. Splitting
// rendered HTML would need a tag-aware splitter that closes and reopens tags; splitting the
// source first is simpler and keeps every part valid by construction.
[[nodiscard]] std::vector<std::string> split_markdown(std::string_view markdown,
                                                      std::size_t max_utf16 = kMaxMessageUtf16);

// ---- Markdown → Telegram HTML ----------------------------------------------------------------

// Renders the Markdown LLMs write into Telegram's HTML parse mode:
//   **bold** __bold__ → <b>;  *italic* _italic_ → <i>;  ~~strike~~ → <s>;  `code` → <code>;
//   ```lang fenced blocks``` → <pre><code class="language-lang"> (<pre> without a language);
//   [text](http…|tg:|mailto:) → <a href>;  # headings → a bold line;  - * + bullets → "• ";
//   > quotes → <blockquote>;  \* and other backslash escapes → the literal character.
// Inline markers pair within one line only; a marker without its partner stays literal text.
// A fence without a closing fence runs to the end of the text (as in CommonMark). Everything
// else is text, with <, > and & escaped. The output is valid UTF-8 (invalid input bytes become
// U+FFFD) and its tags are always balanced and properly nested, whatever the input.
[[nodiscard]] std::string render_markdown_html(std::string_view markdown);

}  // namespace llmassist::telegram
