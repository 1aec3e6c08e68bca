#include "core/prompt_parts.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/utf8.h"

namespace llmassist {

void MemoryManager::build_context_async(const ContextRequest& request, ContextCallback done) {
  done(build_context(request));
}

void MemoryManager::observe_prompt_usage(int, int) {}

std::string memory_used_json(const Context& context) {
  if (context.summary_version == 0 && context.recalled.empty() && context.passages.empty() &&
      context.dropped.empty()) {
    return {};
  }
  nlohmann::json j = nlohmann::json::object();
  j["summary_version"] = context.summary_version;
  j["estimated_tokens"] = context.estimated_tokens;
  j["window_messages"] = context.window_messages;
  auto& recalled = j["recalled"] = nlohmann::json::array();
  for (const auto& r : context.recalled) {
    recalled.push_back({{"kind", r.kind},
                        {"id", r.id},
                        {"message_id", r.message_id},
                        {"session_id", r.session_id},
                        {"text", r.text},
                        {"score", r.score}});
  }
  auto& passages = j["passages"] = nlohmann::json::array();
  for (const auto& p : context.passages) {
    passages.push_back(
        {{"source", p.source}, {"heading", p.heading}, {"text", p.text}, {"score", p.score}});
  }
  j["dropped"] = context.dropped;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace llmassist

namespace llmassist::detail {

double estimate_tokens(std::string_view text, double scale) {
  double tokens = 0;
  for (std::size_t i = 0; i < text.size();) {
    const Utf8Char ch = decode_utf8(text, i);
    i += ch.length;
    const char32_t c = ch.code_point;
    if (!ch.valid) {
      tokens += 1.0;
    } else if (c < 0x250) {
      tokens += 0.25;
    } else if (c >= 0x400 && c <= 0x4ff) {
      tokens += 0.4;
    } else {
      tokens += 1.0 / 3.0;
    }
  }
  return tokens * scale;
}

int estimate_prompt_tokens(const std::vector<ChatMessage>& messages, double scale) {
  double total = 0;
  for (const auto& m : messages) total += estimate_tokens(m.content, scale) + 4;
  return static_cast<int>(std::ceil(total));
}

std::optional<ChatMessage> redraft_instruction(const ContextRequest& request) {
  if (request.rejected_draft.empty()) return std::nullopt;
  std::string text = fmt::format(
      "A human operator rejected your previous answer to this message. Do not repeat it; write "
      "a different answer.\nThe rejected answer:\n\"\"\"\n{}\n\"\"\"",
      request.rejected_draft);
  if (!request.rejection_reason.empty()) {
    text += fmt::format("\nThe operator's reason: {}", request.rejection_reason);
  }
  return ChatMessage{Role::kSystem, std::move(text)};
}

std::string summary_message(std::string_view summary) {
  return fmt::format("Summary of the conversation so far:\n{}", summary);
}

std::string recalled_message(const std::vector<RecalledItem>& items) {
  std::string text =
      "Things this user said or told you earlier (recalled from past messages; use them when "
      "relevant):";
  for (const auto& item : items) text += fmt::format("\n- {}", item.text);
  return text;
}

std::string passages_message(const std::vector<UsedPassage>& passages) {
  std::string text =
      "Passages from the company's documents that may answer the question. Base your answer on "
      "them and name the source when you use one; if they do not answer it, say so rather than "
      "guess.";
  for (const auto& p : passages) {
    text += fmt::format("\n\n[{}{}{}]\n{}", p.source, p.heading.empty() ? "" : " — ", p.heading,
                        p.text);
  }
  return text;
}

}  // namespace llmassist::detail
