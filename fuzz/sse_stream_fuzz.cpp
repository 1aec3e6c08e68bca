// The OpenAI-compatible provider's server-sent-events reader (src/providers/openai_provider.cpp,
// with the line splitter and the <think> filter of src/providers/provider_util.h). The input is a
// response body; its last bytes choose where the body is cut into the pieces the client
// delivers. Checked (stream_harness.h): the tokens and the result are the same whole and in
// pieces, the tokens join into the answer, the completion callback runs once; the body read
// unstreamed or as an error body must not crash.
#include <cstddef>
#include <cstdint>

#include "llmassist/providers/openai_provider.h"
#include "stream_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  llmassist::fuzz::check_stream(llmassist::fuzz::provider_maker<llmassist::OpenAiProviderOptions>(
                                    &llmassist::make_openai_provider),
                                llmassist::fuzz::as_text(data, size));
  return 0;
}
