// A MessageStore in memory, written against the pure virtuals and the lifecycle functions
// (llmassist/reply_lifecycle.h) only: the proof that a custom store repeats none of the rules.
// It keeps no statistics, settings or memory records (their kUnimplemented defaults stand) but
// the embedding cache, and is durable only as long as the object lives.
//
// Thread-safety: every method from any thread (one mutex).
#pragma once

#include <memory>

#include "llmassist/clock.h"
#include "llmassist/message_store.h"

namespace llmassist::testing {

[[nodiscard]] std::unique_ptr<MessageStore> make_memory_store(std::shared_ptr<Clock> clock);

}  // namespace llmassist::testing
