// The sales agent's built-in tools (AssistantOptions::agent, docs/tools.md): stop_contact (the
// contact opts out), handoff_to_human (a request for a person in plain words, as /human) and
// send_document (a configured file goes out with the answer). They reach the assistant through a
// weak reference: a call made while it is destroyed fails instead of touching it.
//
// Thread-safety: the tools' call() from any thread.
#pragma once

#include <memory>
#include <vector>

#include "llmassist/assistant.h"
#include "llmassist/tool.h"

namespace llmassist::detail::assistant {

struct Core;

// The built-in tools `agent` asks for; kInvalidArgument for a document without a path or with a
// name the model could not ask for (letters, digits, '_', '-', '.', 1 to 64).
[[nodiscard]] Result<std::vector<std::shared_ptr<Tool>>> intent_tools(std::weak_ptr<Core> core,
                                                                      const AgentOptions& agent);

}  // namespace llmassist::detail::assistant
