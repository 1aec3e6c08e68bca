// LLMASSIST_API marks what the library's components export. They are compiled with hidden
// visibility (-fvisibility=hidden), so a shared build exports exactly the classes and functions
// of the public headers that carry it, and nothing of the implementation behind them.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define LLMASSIST_API [[gnu::visibility("default")]]
#else
#define LLMASSIST_API
#endif
