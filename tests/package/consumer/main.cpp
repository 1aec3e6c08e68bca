// An outside program built against the installed llmassist package.
#include <llmassist/sqlite/sqlite_store.h>
#include <llmassist/version.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  llmassist::SqliteStoreOptions options;
  options.path = argv[1];
  auto store = llmassist::open_sqlite_store(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().to_string().c_str());
    return 1;
  }
  auto chat = (*store)->upsert_chat({"console", "package-test", "", ""});
  std::printf("llmassist %s: chat %lld\n", LLMASSIST_VERSION_STRING,
              static_cast<long long>(chat.ok() ? chat->id : -1));
  return chat.ok() ? 0 : 1;
}
