// The Assistant of parts: the context they share and the units, each with one owner of its
// state. Callbacks of the LLM and the transports hold the whole (shared_from_this()), so no
// unit goes away under a callback.
//
//   Inbound ──stores, touches──▶ Dispatcher (the worker) ──claims──▶ Drafting ──ToolLoop: LLM,
//   tools──┐
//      │                              ▲        └──claims──▶ Outbox ──transport──┐     │
//      ▼                              │ wakes                                   ▼     ▼
//   OperatorsChat ──decides──▶ store  └──────────────── CompletionWriter ◀─ completions
#pragma once

#include <memory>

#include "core/assistant/completion_writer.h"
#include "core/assistant/context.h"
#include "core/assistant/dispatcher.h"
#include "core/assistant/drafting.h"
#include "core/assistant/inbound.h"
#include "core/assistant/operators_chat.h"
#include "core/assistant/outbox.h"
#include "core/assistant/tool_loop.h"

namespace llmassist::detail::assistant {

struct Core : std::enable_shared_from_this<Core> {
  Context ctx;
  Dispatcher dispatcher{*this};
  CompletionWriter writer{*this};
  Drafting drafting{*this};
  ToolLoop tools{*this};
  Outbox outbox{*this};
  OperatorsChat operators{*this};
  Inbound inbound{*this};

  // Data retention: at start() and then every hour.
  void purge_old();
};

}  // namespace llmassist::detail::assistant
