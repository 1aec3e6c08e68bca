// Free helpers declared beside the interfaces: synchronous wrappers and conveniences.
#include <future>

#include "llmassist/chat_transport.h"
#include "llmassist/llm_provider.h"
#include "llmassist/message_store.h"

namespace llmassist {

Result<InboundResult> append_inbound(MessageStore& store, const InboundMessage& message) {
  auto results = store.append_inbound(std::span<const InboundMessage>(&message, 1));
  if (!results.ok()) return results.status();
  if (results->size() != 1) return internal_error("append_inbound returned no result");
  return std::move(results->front());
}

Result<Completion> complete_sync(LlmProvider& provider, CompletionRequest request,
                                 TokenCallback on_token) {
  auto promise = std::make_shared<std::promise<Result<Completion>>>();
  auto future = promise->get_future();
  provider.complete(std::move(request), std::move(on_token),
                    [promise](Result<Completion> result) { promise->set_value(std::move(result)); });
  return future.get();
}

Result<SentMessage> send_sync(ChatTransport& transport, OutboundMessage message) {
  auto promise = std::make_shared<std::promise<Result<SentMessage>>>();
  auto future = promise->get_future();
  transport.send(std::move(message),
                 [promise](Result<SentMessage> result) { promise->set_value(std::move(result)); });
  return future.get();
}

}  // namespace llmassist
