// Telegram Bot API parsing and formatting. Every entry point catches whatever nlohmann (or an
// allocation) throws and turns it into a Status: the library does not throw.
#include "telegram/telegram_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/json_text.h"
#include "core/text.h"
#include "core/utf8.h"

namespace llmassist::telegram {
namespace {

using nlohmann::json;

// ---- UTF-8 ------------------------------------------------------------------------------------

struct CodePoint {
  std::size_t bytes = 1;  // length of the sequence; 1 for an invalid byte
  std::size_t units = 1;  // UTF-16 code units it takes
  bool valid = true;
};

// The sequence starting at s[i] (i < s.size()), decoded strictly (detail::decode_utf8).
CodePoint next_code_point(std::string_view s, std::size_t i) noexcept {
  const detail::Utf8Char c = detail::decode_utf8(s, i);
  return {c.length, c.code_point >= 0x10000 ? 2u : 1u, c.valid};
}

// `s` cut to at most `max_bytes`, never inside a UTF-8 sequence, with "…" when cut.
std::string truncate_utf8(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  std::size_t end = 0;
  while (end < s.size()) {
    const CodePoint cp = next_code_point(s, end);
    if (end + cp.bytes > max_bytes) break;
    end += cp.bytes;
  }
  return std::string(s.substr(0, end)) + "\xE2\x80\xA6";
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_token_char(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

// Replaces anything shaped like a bot token ("123456:AAE…", digits, a colon, 30+ token
// characters) so that no error message can leak one, whatever the other side echoes back.
std::string redact_tokens(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (is_digit(s[i]) && (i == 0 || !is_digit(s[i - 1]))) {
      std::size_t j = i;
      while (j < s.size() && is_digit(s[j])) ++j;
      if (j - i >= 5 && j < s.size() && s[j] == ':') {
        std::size_t k = j + 1;
        while (k < s.size() && is_token_char(s[k])) ++k;
        if (k - j - 1 >= 30) {
          out += "<redacted>";
          i = k;
          continue;
        }
      }
      out.append(s.substr(i, j - i));
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<std::int64_t> parse_int64(std::string_view s) noexcept {
  std::int64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) return std::nullopt;
  return v;
}

// ---- JSON access that never throws on a wrong type -------------------------------------------

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<std::int64_t> as_int(const json* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<std::int64_t>();
  return std::nullopt;
}

std::string as_string(const json* v) {
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// Deeper JSON than this is refused before parsing: no Bot API object comes close, and the
// serializer recurses.
constexpr int kMaxJsonDepth = 128;

bool nesting_within(std::string_view s, int max_depth) noexcept {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Status parse_json(std::string_view text, std::string_view what, json& out) {
  // (The fuzzer found an update followed by a NUL that read alone but not inside a batch.)
  if (detail::holds_nul(text)) {
    return invalid_argument(fmt::format("{} is not valid JSON (it holds a NUL byte)", what));
  }
  if (!nesting_within(text, kMaxJsonDepth)) {
    return invalid_argument(fmt::format("{} nests deeper than {} levels", what, kMaxJsonDepth));
  }
  out = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return invalid_argument(fmt::format("{} is not valid JSON", what));
  return Status();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---- Bot API errors ---------------------------------------------------------------------------

// Telegram's retry_after is in seconds; a day bounds it so that a hostile value cannot overflow.
std::optional<std::chrono::milliseconds> retry_after_of(const json* parameters) {
  const auto seconds = as_int(parameters == nullptr ? nullptr : member(*parameters, "retry_after"));
  if (!seconds) return std::nullopt;
  return std::chrono::milliseconds(std::clamp<std::int64_t>(*seconds, 0, 86400) * 1000);
}

// Maps a Bot API error (error_code, description, parameters) to a Status a caller can branch on.
Status api_error(int code, std::string_view raw_description, const json* parameters) {
  const std::string description = truncate_utf8(redact_tokens(raw_description), 300);
  const std::string lower = lower_ascii(description);
  const auto contains = [&lower](std::string_view needle) {
    return lower.find(needle) != std::string::npos;
  };
  const std::string quoted = description.empty()
                                 ? fmt::format("telegram: error {}", code)
                                 : fmt::format("telegram: {} ({})", description, code);
  if (code == 429 || code == 420) {
    Status s = resource_exhausted(quoted).with_reason("rate_limited");
    if (auto delay = retry_after_of(parameters)) s.with_retry_after(*delay);
    return s;
  }
  if (code == 401) return unauthenticated(quoted + ": the bot token was refused");
  if (code == 403) {
    Status s = permission_denied(quoted);
    if (contains("blocked") || contains("kicked") || contains("deactivated")) {
      s.with_reason("blocked");
    }
    return s;
  }
  if (code == 404) return not_found(quoted);
  if (code == 409) {
    if (contains("webhook")) {
      return failed_precondition(quoted + ": a webhook is set for this token");
    }
    return failed_precondition(quoted + ": another bot instance is polling this token");
  }
  if (code == 400) {
    if (const auto to =
            as_int(parameters == nullptr ? nullptr : member(*parameters, "migrate_to_chat_id"))) {
      return failed_precondition(fmt::format("{}: the group is now supergroup {}", quoted, *to))
          .with_reason("chat_migrated");
    }
    if (contains("can't parse entities") || contains("can't find end of")) {
      return invalid_argument(quoted).with_reason("parse_entities");
    }
    if (contains("message is not modified")) {
      return invalid_argument(quoted).with_reason("not_modified");
    }
    if (contains("wrong file identifier") || contains("wrong remote file identifier") ||
        contains("file reference")) {
      return invalid_argument(quoted).with_reason("bad_file_id");
    }
    return invalid_argument(quoted);
  }
  if (code >= 400 && code < 500) return invalid_argument(quoted);
  // 5xx, and anything Telegram never sends: assume a transient fault on the way.
  return unavailable(quoted);
}

// The error described by an {"ok": false, ...} body; `http_status` when it names no code.
Status error_from_body(const json& body, int http_status) {
  const auto code = as_int(member(body, "error_code"));
  const int effective = code && *code > 0 && *code < 1000 ? static_cast<int>(*code) : http_status;
  return api_error(effective, as_string(member(body, "description")), member(body, "parameters"));
}

// ---- updates ----------------------------------------------------------------------------------

std::string join_name(const json& obj) {
  std::string first = as_string(member(obj, "first_name"));
  std::string last = as_string(member(obj, "last_name"));
  std::string name = first;
  if (!first.empty() && !last.empty()) name += ' ';
  name += last;
  return detail::trimmed(name);
}

// Sets the sender from a User (or, for anonymous admins and channels, a Chat) object.
bool fill_user(const json* user, InboundEvent& e) {
  if (user == nullptr || !user->is_object()) return false;
  const auto id = as_int(member(*user, "id"));
  if (!id) return false;
  e.user_id = std::to_string(*id);
  e.user_name = join_name(*user);
  if (e.user_name.empty()) e.user_name = as_string(member(*user, "title"));
  e.username = as_string(member(*user, "username"));
  if (e.user_name.empty()) e.user_name = e.username;
  return true;
}

bool fill_chat(const json* chat, InboundEvent& e) {
  if (chat == nullptr || !chat->is_object()) return false;
  const auto id = as_int(member(*chat, "id"));
  if (!id) return false;
  e.chat_external_id = std::to_string(*id);
  e.chat_title = as_string(member(*chat, "title"));
  if (e.chat_title.empty()) e.chat_title = join_name(*chat);
  if (e.chat_title.empty()) e.chat_title = as_string(member(*chat, "username"));
  return true;
}

// Dates from 2100 on are not Telegram's; past 2262 they would also overflow the clock's
// nanoseconds (a fuzzer found 15695183422, year 2467).
constexpr std::int64_t kMaxUnixSeconds = 4'102'444'800;

void fill_date(const json* date, InboundEvent& e) {
  const auto seconds = as_int(date);
  if (seconds && *seconds > 0 && *seconds < kMaxUnixSeconds) {
    e.sent_at = Timestamp(std::chrono::seconds(*seconds));
  }
}

// The forum topic of a message. Outside forums Telegram also sets message_thread_id on replies
// (a reply thread), which is no topic to post into.
void fill_thread(const json& message, InboundEvent& e) {
  const json* topic = member(message, "is_topic_message");
  if (topic == nullptr || !topic->is_boolean() || !topic->get<bool>()) return;
  if (const auto thread = as_int(member(message, "message_thread_id"))) {
    e.thread_id = std::to_string(*thread);
  }
}

// Content a message can carry besides text, most specific first (an animation also has a
// "document", a venue also has a "location").
constexpr const char* kMediaKeys[] = {
    "animation", "photo",   "video", "video_note", "voice",   "audio",
    "document",  "sticker", "venue", "location",   "contact", "poll",
    "dice",      "game",    "story", "paid_media", "invoice", "checklist"};

// Service messages: things that happened in the chat, not something a user said.
constexpr const char* kServiceKeys[] = {"new_chat_members",
                                        "left_chat_member",
                                        "new_chat_title",
                                        "new_chat_photo",
                                        "delete_chat_photo",
                                        "group_chat_created",
                                        "supergroup_chat_created",
                                        "channel_chat_created",
                                        "migrate_to_chat_id",
                                        "migrate_from_chat_id",
                                        "pinned_message",
                                        "successful_payment",
                                        "refunded_payment",
                                        "users_shared",
                                        "chat_shared",
                                        "write_access_allowed",
                                        "forum_topic_created",
                                        "forum_topic_edited",
                                        "forum_topic_closed",
                                        "forum_topic_reopened",
                                        "general_forum_topic_hidden",
                                        "general_forum_topic_unhidden",
                                        "video_chat_started",
                                        "video_chat_ended",
                                        "message_auto_delete_timer_changed",
                                        "web_app_data"};

Status parse_message(const json& m, InboundKind kind, InboundEvent& e) {
  if (!m.is_object()) return invalid_argument("malformed: message is not an object");
  if (!fill_chat(member(m, "chat"), e))
    return invalid_argument("malformed: message has no chat id");
  const auto message_id = as_int(member(m, "message_id"));
  if (!message_id) return invalid_argument("malformed: message has no message_id");
  e.kind = kind;
  e.message_id = std::to_string(*message_id);
  // The sender: the chat an anonymous admin or a channel speaks as (`from` then holds a
  // placeholder user); else the user; else, in a private chat, its other party.
  if (!fill_user(member(m, "sender_chat"), e) && !fill_user(member(m, "from"), e)) {
    fill_user(member(m, "chat"), e);
  }
  fill_date(member(m, "date"), e);
  fill_thread(m, e);

  e.text = as_string(member(m, "text"));
  if (e.text.empty()) e.text = as_string(member(m, "caption"));
  for (const char* key : kMediaKeys) {
    if (member(m, key) != nullptr) {
      e.media = key;
      break;
    }
  }
  if (e.text.empty() && e.media.empty()) {
    for (const char* key : kServiceKeys) {
      if (member(m, key) != nullptr) return unimplemented(fmt::format("service message: {}", key));
    }
    return unimplemented("message without text, caption or media");
  }

  if (const json* reply = member(m, "reply_to_message")) {
    // In a forum every message of a topic "replies" to the topic's opening message; that is
    // where it was posted, not what it answers.
    const auto reply_id = as_int(member(*reply, "message_id"));
    if (reply_id && (e.thread_id.empty() || std::to_string(*reply_id) != e.thread_id)) {
      e.reply_to_message_id = std::to_string(*reply_id);
    }
  }
  return Status();
}

Status parse_callback(const json& q, InboundEvent& e) {
  if (!q.is_object()) return invalid_argument("malformed: callback_query is not an object");
  const json* id = member(q, "id");
  if (id != nullptr && id->is_string()) {
    e.callback_id = id->get<std::string>();
  } else if (const auto numeric = as_int(id)) {
    e.callback_id = std::to_string(*numeric);
  }
  if (e.callback_id.empty()) return invalid_argument("malformed: callback_query has no id");
  if (!fill_user(member(q, "from"), e)) {
    return invalid_argument("malformed: callback_query has no sender");
  }
  e.kind = InboundKind::kCallback;
  e.callback_data = as_string(member(q, "data"));
  const json* message = member(q, "message");
  if (message != nullptr && fill_chat(member(*message, "chat"), e)) {
    if (const auto message_id = as_int(member(*message, "message_id"))) {
      e.message_id = std::to_string(*message_id);
    }
    fill_thread(*message, e);
  } else {
    // A button under an inline-mode message: no chat is named. The user's id is also the id of
    // their private chat with the bot, the one place an answer can go.
    e.chat_external_id = e.user_id;
    e.chat_title = e.user_name;
  }
  return Status();
}

Status parse_member_change(const json& c, InboundEvent& e) {
  if (!c.is_object()) return invalid_argument("malformed: my_chat_member is not an object");
  if (!fill_chat(member(c, "chat"), e)) {
    return invalid_argument("malformed: my_chat_member has no chat id");
  }
  if (!fill_user(member(c, "from"), e)) fill_user(member(c, "chat"), e);
  fill_date(member(c, "date"), e);
  const json* now = member(c, "new_chat_member");
  const std::string status = now == nullptr ? std::string() : as_string(member(*now, "status"));
  if (status == "kicked" || status == "left") {
    e.kind = InboundKind::kBlocked;
  } else if (status == "member" || status == "administrator" || status == "creator") {
    e.kind = InboundKind::kUnblocked;
  } else if (status == "restricted") {
    const json* is_member = member(*now, "is_member");
    const bool in = is_member != nullptr && is_member->is_boolean() && is_member->get<bool>();
    e.kind = in ? InboundKind::kUnblocked : InboundKind::kBlocked;
  } else if (status.empty()) {
    return invalid_argument("malformed: my_chat_member has no new status");
  } else {
    return unimplemented(fmt::format("my_chat_member status: {}", truncate_utf8(status, 32)));
  }
  return Status();
}

Result<ParsedUpdate> parse_update_object(const json& update) {
  if (!update.is_object()) return invalid_argument("malformed: update is not an object");
  const auto update_id = as_int(member(update, "update_id"));
  if (!update_id) return invalid_argument("malformed: no integer update_id");
  ParsedUpdate p;
  p.update_id = *update_id;
  InboundEvent& e = p.event;
  e.channel = std::string(kChannel);
  e.dedup_key = fmt::format("{}:{}", kChannel, *update_id);
  Status s;
  if (const json* m = member(update, "message")) {
    s = parse_message(*m, InboundKind::kMessage, e);
  } else if (const json* edited = member(update, "edited_message")) {
    s = parse_message(*edited, InboundKind::kEditedMessage, e);
  } else if (const json* q = member(update, "callback_query")) {
    s = parse_callback(*q, e);
  } else if (const json* c = member(update, "my_chat_member")) {
    s = parse_member_change(*c, e);
  } else {
    for (const auto& [key, value] : update.items()) {
      if (key != "update_id") {
        return unimplemented(fmt::format("unsupported update kind: {}", truncate_utf8(key, 64)));
      }
    }
    return invalid_argument("malformed: update carries nothing");
  }
  if (!s.ok()) return s;
  return p;
}

// ---- splitting --------------------------------------------------------------------------------

struct Cut {
  std::size_t end = 0;   // the part is [0, end)
  std::size_t next = 0;  // the rest starts here; [end, next) is the dropped separator
};

bool is_newline(char c) noexcept { return c == '\n' || c == '\r'; }

// Where to cut `rest`, whose first `fit` bytes are the most that fit in one part.
Cut choose_cut(std::string_view rest, std::size_t fit) {
  const std::size_t fit_units = utf16_length(rest.substr(0, fit));
  // A cut candidate whose separator starts at byte p: the part ends before the separator run.
  const auto newline_cut = [&](std::size_t p) {
    Cut c{p, p};
    while (c.end > 0 && is_newline(rest[c.end - 1])) --c.end;
    while (c.next < rest.size() && is_newline(rest[c.next])) ++c.next;
    return c;
  };
  const auto space_cut = [&](std::size_t end_of_part, std::size_t p) {
    Cut c{end_of_part, p};
    while (c.end > 0 && rest[c.end - 1] == ' ') --c.end;
    while (c.next < rest.size() && rest[c.next] == ' ') ++c.next;
    return c;
  };
  // One level of preference: the last separator in the window, when it leaves a part at least
  // `min_units` long (separators further left only leave shorter parts).
  const auto find = [&](int level, std::size_t min_units) -> std::optional<Cut> {
    std::size_t p = std::string_view::npos;
    Cut c;
    switch (level) {
      case 0:
        p = rest.rfind("\n\n", fit);
        if (p != std::string_view::npos) c = newline_cut(p);
        break;
      case 1:
        p = rest.rfind('\n', fit);
        if (p != std::string_view::npos) c = newline_cut(p);
        break;
      case 2:
        // ". ", "! ", "? ": the punctuation stays with its sentence, which must fit.
        for (std::size_t q = std::min(fit, rest.size() - 1); q > 0; --q) {
          const char ch = rest[q - 1];
          if (rest[q] == ' ' && (ch == '.' || ch == '!' || ch == '?')) {
            p = q;
            c = space_cut(p, p);
            break;
          }
        }
        break;
      default:
        p = rest.rfind(' ', fit);
        if (p != std::string_view::npos) c = space_cut(p, p);
        break;
    }
    if (p == std::string_view::npos || c.end == 0) return std::nullopt;
    if (utf16_length(rest.substr(0, c.end)) < min_units) return std::nullopt;
    return c;
  };
  for (const std::size_t min_units : {(fit_units + 1) / 2, std::size_t{1}}) {
    for (int level = 0; level < 4; ++level) {
      if (auto c = find(level, min_units)) return *c;
    }
  }
  return Cut{fit, fit};
}

// ---- Markdown → HTML ----------------------------------------------------------------------------

void escape_html(std::string_view s, std::string& out) {
  for (const char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        out += c;
    }
  }
}

void escape_attribute(std::string_view s, std::string& out) {
  for (const char c : s) {
    if (c == '"') {
      out += "&quot;";
    } else {
      escape_html(std::string_view(&c, 1), out);
    }
  }
}

bool is_ascii_punct(char c) noexcept {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}

// Letters and digits, counting every non-ASCII byte as a letter: "snake_case" and "слово_слово"
// keep their underscores.
bool is_wordy(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

enum InlineFlag : unsigned { kBold = 1, kItalic = 2, kStrike = 4, kLink = 8 };

// The inline renderer of one line. Closers are found through tables built once per line (the
// next valid closer at or after each position), so that a line full of unmatched markers still
// renders in linear time.
class InlineRenderer {
 public:
  // Lines of kMaxLine bytes or more are not given to it (see render_inline).
  static constexpr std::size_t kMaxLine = std::numeric_limits<std::uint32_t>::max() - 1;

  InlineRenderer(std::string_view line, std::string& out) : s_(line), out_(out) {
    const std::size_t n = s_.size();
    for (auto& table : next_) table.assign(n + 1, kNoneStored);
    for (std::size_t j = n; j-- > 0;) {
      for (std::size_t k = 0; k < kKinds; ++k) {
        next_[k][j] =
            is_closer(static_cast<Kind>(k), j) ? static_cast<std::uint32_t>(j) : next_[k][j + 1];
      }
    }
  }

  // `active`: formats already open around the line (a heading is bold); their markers render
  // without a second, nested tag.
  void render(unsigned active) { render_range(0, s_.size(), active, 0); }

 private:
  enum Kind : std::size_t { kStar3, kStar2, kUnder2, kStar1, kUnder1, kTilde2, kBracket, kKinds };
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  // 32-bit positions halve the tables' memory: they take 28 bytes per byte of the line.
  static constexpr std::uint32_t kNoneStored = std::numeric_limits<std::uint32_t>::max();
  // Nesting deeper than this renders the inner markers literally. Pairing already bounds the
  // depth by the number of marker kinds; this is a second fence for the stack.
  static constexpr int kMaxDepth = 12;

  char at(std::size_t i) const { return i < s_.size() ? s_[i] : '\0'; }
  bool blank_at(std::size_t i) const { return i >= s_.size() || s_[i] == ' ' || s_[i] == '\t'; }
  bool run(std::size_t i, char c, std::size_t n) const {
    for (std::size_t k = 0; k < n; ++k) {
      if (at(i + k) != c) return false;
    }
    return true;
  }

  bool is_closer(Kind k, std::size_t j) const {
    const bool after_text = j > 0 && !blank_at(j - 1);
    switch (k) {
      case kStar3:
        return run(j, '*', 3) && after_text;
      case kStar2:
        return run(j, '*', 2) && after_text && at(j + 2) != '*';
      case kUnder2:
        return run(j, '_', 2) && after_text && at(j + 2) != '_' && !is_wordy(at(j + 2));
      case kStar1:
        return at(j) == '*' && after_text && at(j - 1) != '*' && at(j + 1) != '*';
      case kUnder1:
        return at(j) == '_' && after_text && at(j - 1) != '_' && at(j + 1) != '_' &&
               !is_wordy(at(j + 1));
      case kTilde2:
        return run(j, '~', 2) && after_text;
      case kBracket:
        return at(j) == ']';
      default:
        return false;
    }
  }

  // The first closer of kind `k` in [from, limit), or kNone.
  std::size_t closer(Kind k, std::size_t from, std::size_t limit) const {
    if (from >= limit) return kNone;
    const std::uint32_t j = next_[k][from];
    return j != kNoneStored && j < limit ? j : kNone;
  }

  void open(unsigned flag, unsigned active) {
    if (active & flag) return;
    out_ += flag == kBold ? "<b>" : flag == kItalic ? "<i>" : "<s>";
  }
  void close(unsigned flag, unsigned active) {
    if (active & flag) return;
    out_ += flag == kBold ? "</b>" : flag == kItalic ? "</i>" : "</s>";
  }

  // A delimited span: markers of `width` at i, content, closer of the same width at j.
  void span(std::size_t i, std::size_t j, std::size_t width, unsigned flags, unsigned active,
            int depth) {
    for (const unsigned f : {kBold, kItalic, kStrike}) {
      if (flags & f) open(f, active);
    }
    render_range(i + width, j, active | flags, depth + 1);
    for (const unsigned f : {kStrike, kItalic, kBold}) {
      if (flags & f) close(f, active);
    }
  }

  // Tries a marker at i; returns the position after what it consumed, or kNone for literal text.
  std::size_t try_marker(std::size_t i, std::size_t limit, unsigned active, int depth) {
    const char c = s_[i];
    if (c == '`') return try_code(i, limit);
    if (depth >= kMaxDepth) return kNone;
    if (c == '*') {
      if (run(i, '*', 3) && !blank_at(i + 3) && at(i + 3) != '*') {
        if (const auto j = closer(kStar3, i + 4, limit); j != kNone) {
          span(i, j, 3, kBold | kItalic, active, depth);
          return j + 3;
        }
      }
      if (run(i, '*', 2) && !blank_at(i + 2)) {
        if (const auto j = closer(kStar2, i + 3, limit); j != kNone) {
          span(i, j, 2, kBold, active, depth);
          return j + 2;
        }
      }
      if (!blank_at(i + 1) && at(i + 1) != '*') {
        if (const auto j = closer(kStar1, i + 2, limit); j != kNone) {
          span(i, j, 1, kItalic, active, depth);
          return j + 1;
        }
      }
      return kNone;
    }
    if (c == '_') {
      if (i > 0 && is_wordy(s_[i - 1])) return kNone;
      if (run(i, '_', 2) && !blank_at(i + 2)) {
        if (const auto j = closer(kUnder2, i + 3, limit); j != kNone) {
          span(i, j, 2, kBold, active, depth);
          return j + 2;
        }
      }
      if (!blank_at(i + 1) && at(i + 1) != '_') {
        if (const auto j = closer(kUnder1, i + 2, limit); j != kNone) {
          span(i, j, 1, kItalic, active, depth);
          return j + 1;
        }
      }
      return kNone;
    }
    if (c == '~') {
      if (run(i, '~', 2) && !blank_at(i + 2)) {
        if (const auto j = closer(kTilde2, i + 3, limit); j != kNone) {
          span(i, j, 2, kStrike, active, depth);
          return j + 2;
        }
      }
      return kNone;
    }
    if (c == '[' && !(active & kLink)) return try_link(i, limit, active, depth);
    return kNone;
  }

  // `code`: a run of n backticks up to the next run of exactly n.
  std::size_t try_code(std::size_t i, std::size_t limit) {
    std::size_t n = 0;
    while (i + n < limit && s_[i + n] == '`') ++n;
    std::size_t j = i + n;
    while (j < limit) {
      if (s_[j] != '`') {
        ++j;
        continue;
      }
      std::size_t m = 0;
      while (j + m < limit && s_[j + m] == '`') ++m;
      if (m == n) {
        std::string_view content = s_.substr(i + n, j - i - n);
        if (content.size() >= 2 && content.front() == ' ' && content.back() == ' ' &&
            content.find_first_not_of(' ') != std::string_view::npos) {
          content = content.substr(1, content.size() - 2);
        }
        out_ += "<code>";
        escape_html(content, out_);
        out_ += "</code>";
        return j + m;
      }
      j += m;
    }
    // No partner: the whole run is literal, so that its backticks cannot open a later span.
    out_.append(s_.substr(i, n));
    return i + n;
  }

  // [text](url) with an absolute http(s), tg or mailto URL; anything else stays literal.
  std::size_t try_link(std::size_t i, std::size_t limit, unsigned active, int depth) {
    const std::size_t close_bracket = closer(kBracket, i + 1, limit);
    if (close_bracket == kNone || close_bracket == i + 1 || at(close_bracket + 1) != '(') {
      return kNone;
    }
    const std::size_t url_begin = close_bracket + 2;
    std::size_t k = url_begin;
    int parens = 0;
    for (; k < limit; ++k) {
      const char c = s_[k];
      // A URL holds no blanks or brackets; stopping there also keeps the scan linear.
      if (c == ' ' || c == '\t' || c == '[' || c == ']' || c == '<' || c == '>') return kNone;
      if (c == '(') ++parens;
      if (c == ')') {
        if (parens == 0) break;
        --parens;
      }
    }
    if (k >= limit || k == url_begin) return kNone;
    const std::string_view url = s_.substr(url_begin, k - url_begin);
    const std::string scheme = lower_ascii(url.substr(0, 8));
    if (!scheme.starts_with("http://") && !scheme.starts_with("https://") &&
        !scheme.starts_with("tg://") && !scheme.starts_with("mailto:")) {
      return kNone;
    }
    out_ += "<a href=\"";
    escape_attribute(url, out_);
    out_ += "\">";
    render_range(i + 1, close_bracket, active | kLink, depth + 1);
    out_ += "</a>";
    return k + 1;
  }

  void render_range(std::size_t begin, std::size_t end, unsigned active, int depth) {
    std::size_t i = begin;
    while (i < end) {
      const char c = s_[i];
      if (c == '\\' && i + 1 < end && is_ascii_punct(s_[i + 1])) {
        escape_html(s_.substr(i + 1, 1), out_);
        i += 2;
        continue;
      }
      if (c == '*' || c == '_' || c == '~' || c == '`' || c == '[') {
        if (const std::size_t next = try_marker(i, end, active, depth); next != kNone) {
          i = next;
          continue;
        }
      }
      escape_html(s_.substr(i, 1), out_);
      ++i;
    }
  }

  std::string_view s_;
  std::string& out_;
  std::array<std::vector<std::uint32_t>, kKinds> next_;
};

// A line too long for the renderer's 32-bit tables (4 GiB) is shown as plain text.
void render_inline(std::string_view line, std::string& out, unsigned active = 0) {
  if (line.size() >= InlineRenderer::kMaxLine) {
    escape_html(line, out);
    return;
  }
  InlineRenderer(line, out).render(active);
}

std::size_t leading_spaces(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

struct Fence {
  char marker = '`';
  std::size_t length = 0;  // 0: not a fence
  std::string language;
};

// An opening fence: up to three spaces, three or more ` or ~, an optional info string (which
// for backtick fences holds no backtick: "```x```" is inline code).
Fence opening_fence(std::string_view line) {
  const std::size_t indent = leading_spaces(line);
  if (indent > 3 || indent >= line.size()) return {};
  const char c = line[indent];
  if (c != '`' && c != '~') return {};
  std::size_t n = 0;
  while (indent + n < line.size() && line[indent + n] == c) ++n;
  if (n < 3) return {};
  std::string_view info = line.substr(indent + n);
  if (c == '`' && info.find('`') != std::string_view::npos) return {};
  Fence f{c, n, {}};
  const std::size_t b = info.find_first_not_of(" \t");
  if (b != std::string_view::npos) {
    for (std::size_t k = b; k < info.size() && f.language.size() < 32; ++k) {
      const char ch = info[k];
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
                      ch == '_' || ch == '+' || ch == '-' || ch == '#' || ch == '.';
      if (!ok) break;
      f.language += ch;
    }
  }
  return f;
}

bool closes_fence(std::string_view line, const Fence& open) {
  const std::size_t indent = leading_spaces(line);
  if (indent > 3) return false;
  std::size_t n = 0;
  while (indent + n < line.size() && line[indent + n] == open.marker) ++n;
  if (n < open.length) return false;
  for (std::size_t k = indent + n; k < line.size(); ++k) {
    if (line[k] != ' ' && line[k] != '\t') return false;
  }
  return true;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return lines;
}

// A line outside code blocks and quotes: a heading, a bullet, or text.
void render_line(std::string_view line, std::string& out) {
  const std::size_t indent = leading_spaces(line);
  const std::string_view body = line.substr(indent);
  if (indent <= 3 && !body.empty() && body.front() == '#') {
    std::size_t level = 0;
    while (level < body.size() && body[level] == '#') ++level;
    if (level <= 6 && (level == body.size() || body[level] == ' ' || body[level] == '\t')) {
      std::string_view title = body.substr(level);
      const auto b = title.find_first_not_of(" \t");
      title = b == std::string_view::npos ? std::string_view() : title.substr(b);
      // A closing run of #, as in "## Title ##".
      const auto e = title.find_last_not_of(" \t#");
      title = e == std::string_view::npos ? std::string_view() : title.substr(0, e + 1);
      if (!title.empty()) {
        // The ** of "## **Title**" must not nest a <b> in the heading's own.
        out += "<b>";
        render_inline(title, out, kBold);
        out += "</b>";
      }
      return;
    }
  }
  if (body.size() >= 2 && (body[0] == '-' || body[0] == '*' || body[0] == '+') &&
      (body[1] == ' ' || body[1] == '\t')) {
    // "* * *" and "- - -" are rules, and "- " alone is no item: both stay literal.
    const std::string marker_or_blank = std::string(" \t") + body[0];
    if (body.find_first_not_of(marker_or_blank) != std::string_view::npos) {
      out.append(line.substr(0, indent));
      out += "\xE2\x80\xA2 ";
      render_inline(body.substr(2), out);
      return;
    }
  }
  render_inline(line, out);
}

bool is_quote_line(std::string_view line) {
  const std::size_t indent = leading_spaces(line);
  return indent <= 3 && indent < line.size() && line[indent] == '>';
}

std::string_view quote_content(std::string_view line) {
  std::string_view rest = line.substr(leading_spaces(line) + 1);
  if (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  return rest;
}

// Tracks fences through Markdown lines exactly as the renderer does.
struct FenceTracker {
  std::optional<Fence> open;
  void feed(std::string_view line) {
    if (open) {
      if (closes_fence(line, *open)) open.reset();
    } else if (!is_quote_line(line)) {
      Fence f = opening_fence(line);
      if (f.length > 0) open = std::move(f);
    }
  }
};

}  // namespace

// ---- public: UTF-16 -----------------------------------------------------------------------------

std::size_t utf16_length(std::string_view utf8) noexcept {
  std::size_t units = 0;
  for (std::size_t i = 0; i < utf8.size();) {
    const CodePoint cp = next_code_point(utf8, i);
    units += cp.units;
    i += cp.bytes;
  }
  return units;
}

std::string_view utf16_substr(std::string_view utf8, std::size_t offset,
                              std::size_t length) noexcept {
  const std::size_t last = length > std::numeric_limits<std::size_t>::max() - offset
                               ? std::numeric_limits<std::size_t>::max()
                               : offset + length;
  std::size_t begin = utf8.size();
  std::size_t end = utf8.size();
  std::size_t unit = 0;
  bool started = false;
  for (std::size_t i = 0; i < utf8.size();) {
    if (!started && unit >= offset) {
      begin = i;
      started = true;
    }
    if (unit >= last) {
      end = i;
      break;
    }
    const CodePoint cp = next_code_point(utf8, i);
    unit += cp.units;
    i += cp.bytes;
  }
  if (!started) return utf8.substr(utf8.size());
  return utf8.substr(begin, std::max(begin, end) - begin);
}

std::string sanitize_utf8(std::string_view utf8) { return detail::storable_text(utf8); }

std::size_t html_visible_utf16_length(std::string_view html) noexcept {
  std::size_t units = 0;
  for (std::size_t i = 0; i < html.size();) {
    if (html[i] == '<') {
      const std::size_t close = html.find('>', i);
      if (close == std::string_view::npos) return units + utf16_length(html.substr(i));
      i = close + 1;
    } else if (html[i] == '&') {
      const std::size_t semi = html.find(';', i);
      if (semi != std::string_view::npos && semi - i <= 10) {
        ++units;
        i = semi + 1;
      } else {
        ++units;
        ++i;
      }
    } else {
      const CodePoint cp = next_code_point(html, i);
      units += cp.units;
      i += cp.bytes;
    }
  }
  return units;
}

// ---- public: updates
// ------------------------------------------------------------------------------

Result<ParsedUpdate> parse_update(const nlohmann::json& update) {
  try {
    return parse_update_object(update);
  } catch (const std::exception& e) {
    return invalid_argument(fmt::format("malformed: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return invalid_argument("malformed: unreadable update");
  }
}

Result<ParsedUpdate> parse_update(std::string_view update_json) {
  try {
    json update;
    LLMASSIST_RETURN_IF_ERROR(parse_json(update_json, "the update", update));
    return parse_update(update);
  } catch (...) {
    return invalid_argument("the update could not be read");
  }
}

Result<UpdateBatch> parse_updates(std::string_view get_updates_body) {
  try {
    json body;
    LLMASSIST_RETURN_IF_ERROR(parse_json(get_updates_body, "the getUpdates response", body));
    if (!body.is_object()) return invalid_argument("the getUpdates response is not an object");
    const json* ok = member(body, "ok");
    if (ok == nullptr || !ok->is_boolean()) {
      return invalid_argument("the getUpdates response has no \"ok\" flag");
    }
    if (!ok->get<bool>()) return error_from_body(body, 0);
    const json* result = member(body, "result");
    if (result == nullptr || !result->is_array()) {
      return invalid_argument("the getUpdates response has no result array");
    }
    UpdateBatch batch;
    for (const json& update : *result) {
      const auto id = as_int(member(update, "update_id"));
      if (id && (!batch.max_update_id || *id > *batch.max_update_id)) batch.max_update_id = id;
      auto parsed = parse_update(update);
      if (parsed.ok()) {
        batch.events.push_back(std::move(parsed).value());
      } else {
        batch.skipped.push_back({id, parsed.status().message()});
      }
    }
    return batch;
  } catch (const std::exception& e) {
    return internal_error(fmt::format("reading getUpdates: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("reading getUpdates failed");
  }
}

// ---- public: method responses -------------------------------------------------------------------

Result<MethodResult> parse_method_response(std::string_view body, int http_status,
                                           bool keep_result) {
  try {
    json j;
    const Status parsed = parse_json(body, "the response", j);
    if (!parsed.ok() || !j.is_object()) {
      if (http_status >= 200 && http_status < 300) {
        return invalid_argument("telegram: the response is not a JSON object");
      }
      return api_error(http_status, fmt::format("HTTP {} without a Bot API body", http_status),
                       nullptr);
    }
    const json* ok = member(j, "ok");
    if (ok != nullptr && ok->is_boolean() && ok->get<bool>()) {
      const json* result = member(j, "result");
      if (result == nullptr) return invalid_argument("telegram: \"ok\" response without a result");
      MethodResult out;
      if (keep_result) out.result_json = dump(*result);
      if (const auto id = as_int(member(*result, "message_id"))) {
        out.message_id = std::to_string(*id);
      }
      if (const json* document = member(*result, "document")) {
        out.file_id = as_string(member(*document, "file_id"));
      }
      return out;
    }
    return error_from_body(j, http_status);
  } catch (const std::exception& e) {
    return internal_error(fmt::format("reading a response: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("reading a response failed");
  }
}

// ---- public: request bodies ---------------------------------------------------------------------

namespace {

// chat_id is an integer, or "@channelusername".
Status put_chat_id(json& body, std::string_view chat) {
  if (chat.empty()) return invalid_argument("the message has no chat");
  if (const auto id = parse_int64(chat)) {
    body["chat_id"] = *id;
  } else if (chat.front() == '@' && chat.size() > 1) {
    body["chat_id"] = sanitize_utf8(chat);
  } else {
    return invalid_argument("the chat id is neither a number nor an @username");
  }
  return Status();
}

Status put_text(json& body, const OutboundMessage& message, bool html, bool no_preview) {
  std::string text = sanitize_utf8(message.text);
  const std::size_t visible = html ? html_visible_utf16_length(text) : utf16_length(text);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos || visible == 0) {
    return invalid_argument("the message text is empty");
  }
  if (visible > kMaxMessageUtf16) {
    return invalid_argument(fmt::format(
        "the message text is {} UTF-16 units long, more than the {} Telegram takes; split it",
        visible, kMaxMessageUtf16));
  }
  body["text"] = std::move(text);
  if (html) body["parse_mode"] = "HTML";
  if (no_preview) body["link_preview_options"] = {{"is_disabled", true}};
  return Status();
}

Status put_buttons(json& body, const std::vector<std::vector<Button>>& rows) {
  json keyboard = json::array();
  for (const auto& row : rows) {
    json out_row = json::array();
    for (const Button& b : row) {
      if (b.text.empty()) return invalid_argument("a button has no text");
      if (b.callback_data.empty() || b.callback_data.size() > 64) {
        return invalid_argument(
            fmt::format("a button's callback data is {} bytes; Telegram takes 1 to 64",
                        b.callback_data.size()));
      }
      json button = json::object();
      button["text"] = sanitize_utf8(b.text);
      button["callback_data"] = sanitize_utf8(b.callback_data);
      out_row.push_back(std::move(button));
    }
    if (!out_row.empty()) keyboard.push_back(std::move(out_row));
  }
  if (!keyboard.empty()) body["reply_markup"] = {{"inline_keyboard", std::move(keyboard)}};
  return Status();
}

}  // namespace

Result<std::string> build_send_message(const OutboundMessage& message, bool html,
                                       bool disable_link_preview) {
  try {
    json body = json::object();
    LLMASSIST_RETURN_IF_ERROR(put_chat_id(body, message.chat_external_id));
    LLMASSIST_RETURN_IF_ERROR(put_text(body, message, html, disable_link_preview));
    if (!message.thread_id.empty()) {
      const auto thread = parse_int64(message.thread_id);
      if (!thread) return invalid_argument("the thread id is not a number");
      body["message_thread_id"] = *thread;
    }
    if (!message.reply_to_message_id.empty()) {
      const auto reply = parse_int64(message.reply_to_message_id);
      if (!reply) return invalid_argument("the id of the message to reply to is not a number");
      body["reply_parameters"] = {{"message_id", *reply}, {"allow_sending_without_reply", true}};
    }
    LLMASSIST_RETURN_IF_ERROR(put_buttons(body, message.buttons));
    return dump(body);
  } catch (const std::exception& e) {
    return internal_error(fmt::format("building sendMessage: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("building sendMessage failed");
  }
}

Result<std::string> build_edit_message_text(const OutboundMessage& message,
                                            std::string_view message_id, bool html,
                                            bool disable_link_preview) {
  try {
    json body = json::object();
    LLMASSIST_RETURN_IF_ERROR(put_chat_id(body, message.chat_external_id));
    const auto id = parse_int64(message_id);
    if (!id) return invalid_argument("the id of the message to edit is not a number");
    body["message_id"] = *id;
    LLMASSIST_RETURN_IF_ERROR(put_text(body, message, html, disable_link_preview));
    LLMASSIST_RETURN_IF_ERROR(put_buttons(body, message.buttons));
    return dump(body);
  } catch (const std::exception& e) {
    return internal_error(
        fmt::format("building editMessageText: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("building editMessageText failed");
  }
}

namespace {

// The parameters of sendDocument but `document`, as a JSON object.
Result<json> send_document_params(const OutboundMessage& message, std::string_view caption) {
  json body = json::object();
  LLMASSIST_RETURN_IF_ERROR(put_chat_id(body, message.chat_external_id));
  if (!message.thread_id.empty()) {
    const auto thread = parse_int64(message.thread_id);
    if (!thread) return invalid_argument("the thread id is not a number");
    body["message_thread_id"] = *thread;
  }
  if (std::string text = fit_caption(caption); !text.empty()) body["caption"] = std::move(text);
  if (!message.reply_to_message_id.empty()) {
    const auto reply = parse_int64(message.reply_to_message_id);
    if (!reply) return invalid_argument("the id of the message to reply to is not a number");
    body["reply_parameters"] = {{"message_id", *reply}, {"allow_sending_without_reply", true}};
  }
  LLMASSIST_RETURN_IF_ERROR(put_buttons(body, message.buttons));
  return body;
}

}  // namespace

Result<std::vector<FormField>> build_send_document_fields(const OutboundMessage& message,
                                                          std::string_view caption) {
  try {
    LLMASSIST_ASSIGN_OR_RETURN(json params, send_document_params(message, caption));
    std::vector<FormField> fields;
    for (const auto& [name, value] : params.items()) {
      fields.push_back({name, value.is_string() ? value.get<std::string>() : dump(value)});
    }
    return fields;
  } catch (const std::exception& e) {
    return internal_error(fmt::format("building sendDocument: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("building sendDocument failed");
  }
}

Result<std::string> build_send_document(const OutboundMessage& message, std::string_view caption,
                                        std::string_view file_id) {
  try {
    if (file_id.empty()) return invalid_argument("no file_id to send");
    LLMASSIST_ASSIGN_OR_RETURN(json body, send_document_params(message, caption));
    body["document"] = sanitize_utf8(file_id);
    return dump(body);
  } catch (const std::exception& e) {
    return internal_error(fmt::format("building sendDocument: {}", truncate_utf8(e.what(), 200)));
  } catch (...) {
    return internal_error("building sendDocument failed");
  }
}

std::string fit_caption(std::string_view caption) {
  std::string text = sanitize_utf8(caption);
  if (utf16_length(text) <= kMaxCaptionUtf16) return text;
  // "…" is one unit; the cut never leaves the part empty (a text that long has a first part).
  auto parts = split_message(text, kMaxCaptionUtf16 - 1);
  return parts.empty() ? std::string("…") : std::move(parts.front()) + "…";
}

std::string attachment_file_name(const Attachment& attachment) {
  std::string_view name = attachment.file_name;
  if (name.empty()) {
    name = attachment.path;
    if (const auto slash = name.rfind('/'); slash != std::string_view::npos) {
      name.remove_prefix(slash + 1);
    }
  }
  std::string out = sanitize_utf8(name);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  if (out.empty()) out = "file";
  return out;
}

// ---- public: splitting
// ----------------------------------------------------------------------------

std::vector<std::string> split_message(std::string_view text, std::size_t max_utf16) {
  const std::size_t max = std::max<std::size_t>(max_utf16, 2);
  std::vector<std::string> parts;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::size_t fit = 0;
    std::size_t units = 0;
    while (fit < rest.size()) {
      const CodePoint cp = next_code_point(rest, fit);
      if (units + cp.units > max) break;
      units += cp.units;
      fit += cp.bytes;
    }
    if (fit == rest.size()) {
      parts.emplace_back(rest);
      break;
    }
    const Cut cut = choose_cut(rest, fit);
    if (cut.end > 0) parts.emplace_back(rest.substr(0, cut.end));
    rest.remove_prefix(cut.next);
  }
  return parts;
}

std::vector<std::string> split_markdown(std::string_view markdown, std::size_t max_utf16) {
  std::vector<std::string> parts = split_message(markdown, max_utf16);
  std::vector<std::string> out;
  FenceTracker tracker;
  for (std::string& part : parts) {
    std::string text;
    std::vector<std::string_view> lines = split_lines(part);
    std::size_t first = 0;
    if (tracker.open) {
      if (closes_fence(lines.front(), *tracker.open)) {
        // The cut fell just before the closing fence, which the previous part already got.
        tracker.open.reset();
        first = 1;
      } else {
        text =
            std::string(tracker.open->length, tracker.open->marker) + tracker.open->language + "\n";
      }
    }
    for (std::size_t k = first; k < lines.size(); ++k) {
      tracker.feed(lines[k]);
      text.append(lines[k]);
      if (k + 1 < lines.size()) text += '\n';
    }
    if (tracker.open) {
      text += '\n';
      text.append(tracker.open->length, tracker.open->marker);
    }
    if (text.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(std::move(text));
  }
  return out;
}

// ---- public: Markdown → HTML --------------------------------------------------------------------

std::string render_markdown_html(std::string_view markdown) {
  const std::string text = sanitize_utf8(markdown);
  const std::vector<std::string_view> lines = split_lines(text);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (std::size_t i = 0; i < lines.size();) {
    if (i > 0) out += '\n';
    const std::string_view line = lines[i];
    if (const Fence fence = opening_fence(line); fence.length > 0) {
      std::size_t j = i + 1;
      while (j < lines.size() && !closes_fence(lines[j], fence)) ++j;
      std::string code;
      for (std::size_t k = i + 1; k < j; ++k) {
        if (k > i + 1) code += '\n';
        code.append(lines[k]);
      }
      // An empty block renders as nothing: Telegram refuses empty entities.
      if (!code.empty()) {
        out += fence.language.empty() ? std::string("<pre>")
                                      : "<pre><code class=\"language-" + fence.language + "\">";
        escape_html(code, out);
        out += fence.language.empty() ? "</pre>" : "</code></pre>";
      }
      i = j < lines.size() ? j + 1 : j;
      continue;
    }
    if (is_quote_line(line)) {
      std::size_t j = i;
      std::string quote;
      while (j < lines.size() && is_quote_line(lines[j])) {
        if (j > i) quote += '\n';
        render_line(quote_content(lines[j]), quote);
        ++j;
      }
      if (quote.find_first_not_of(" \t\n") != std::string::npos) {
        out += "<blockquote>" + quote + "</blockquote>";
      } else {
        out += quote;
      }
      i = j;
      continue;
    }
    render_line(line, out);
    ++i;
  }
  return out;
}

}  // namespace llmassist::telegram
