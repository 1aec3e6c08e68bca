// The sample knowledge base shipped with llmassist: questions about llmassist itself, in the FAQ
// Markdown format (include/llmassist/providers/knowledge_base_provider.h shows it), in English
// (examples/knowledge-base/llmassist-faq.md) and Russian (llmassist-faq.ru.md), compiled into
// the library so that a bot started with nothing configured answers something useful in the
// language it is asked in.
//
// Thread-safety: the texts are constants.
#pragma once

#include <string_view>

#include "llmassist/export.h"

namespace llmassist {

// The English sample.
[[nodiscard]] LLMASSIST_API std::string_view sample_knowledge_base();

// The Russian sample: the same entries, written for Russian readers.
[[nodiscard]] LLMASSIST_API std::string_view sample_knowledge_base_ru();

}  // namespace llmassist
