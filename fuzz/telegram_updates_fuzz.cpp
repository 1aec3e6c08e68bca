// Telegram Bot API input (src/telegram/telegram_format.h): the input is a getUpdates response
// body, one Update (as a webhook receives it) and a method response, all at once. Nothing may
// crash or throw; and what comes out is consistent:
// - a batch's max_update_id is at least every event's update_id;
// - every event names its chat and carries the dedup key "telegram:<update_id>";
// - an update parsed alone (parse_update) gives the event parse_updates gives for it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "telegram/telegram_format.h"

namespace {

namespace tg = llmassist::telegram;
using llmassist::fuzz::require;

void check_event(const tg::ParsedUpdate& p) {
  require(!p.event.chat_external_id.empty(), "an event without a chat");
  require(p.event.dedup_key == "telegram:" + std::to_string(p.update_id),
          "an event whose dedup key is not its update id");
  require(p.event.channel == tg::kChannel, "an event of another channel");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = llmassist::fuzz::as_text(data, size);

  if (auto batch = tg::parse_updates(body); batch.ok()) {
    for (const auto& p : batch->events) {
      check_event(p);
      require(batch->max_update_id && *batch->max_update_id >= p.update_id,
              "max_update_id below an event's update_id");
    }
    for (const auto& s : batch->skipped) {
      require(!s.reason.empty(), "a skipped update without a reason");
      if (s.update_id) {
        require(batch->max_update_id && *batch->max_update_id >= *s.update_id,
                "max_update_id below a skipped update's update_id");
      }
    }
  }

  for (const int status : {200, 400, 429, 502}) {
    // A success keeps the result; a failure is a Status with a message.
    auto r = tg::parse_method_response(body, status, /*keep_result=*/true);
    if (r.ok()) {
      require(!r->result_json.empty(), "a successful response without its result");
    } else {
      require(!r.status().message().empty(), "a failed response without a message");
    }
  }

  if (auto one = tg::parse_update(body); one.ok()) {
    check_event(*one);
    // The same update inside a batch reads the same.
    const std::string wrapped = "{\"ok\":true,\"result\":[" + std::string(body) + "]}";
    auto batch = tg::parse_updates(wrapped);
    if (!batch.ok()) {
      // Only the two levels of nesting the wrapping adds may cost it its place.
      require(batch.status().message().find("nests deeper") != std::string::npos,
              "an update parsed alone is refused in a batch");
      return 0;
    }
    require(batch->events.size() == 1 && batch->events[0].update_id == one->update_id &&
                batch->events[0].event.text == one->event.text &&
                batch->events[0].event.chat_external_id == one->event.chat_external_id &&
                batch->events[0].event.user_id == one->event.user_id &&
                batch->events[0].event.kind == one->event.kind,
            "an update parsed alone and in a batch differ");
  }

  return 0;
}
