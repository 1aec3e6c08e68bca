// The knowledge base (llmassist/memory/knowledge_base.h): splitting, search in English and
// Russian, hybrid fusion with a deterministic test embedder, HNSW against exact search, reloads
// of files changed on disk, and the embedding cache.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "llmassist/memory/knowledge_base.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "memory/passage_splitter.h"
#include "memory/text_analyzer.h"
#include "support/capturing_logger.h"
#include "support/memory_store.h"
#include "support/temp_dir.h"

using namespace llmassist;

namespace {

// A hashed bag of words over the analyzed terms, with a table of synonyms mapped to one term:
// texts that share terms (or synonyms) are similar, others are orthogonal (up to collisions of
// the 4096 buckets). Counts its requests and inputs.
class BagOfWordsEmbedder final : public EmbeddingProvider {
 public:
  explicit BagOfWordsEmbedder(std::map<std::string, std::string> synonyms = {}, int batch = 8)
      : synonyms_(std::move(synonyms)), batch_(batch) {}
  std::string_view name() const override { return "test"; }
  std::string_view model() const override { return "bag-of-words"; }
  int max_batch() const override { return batch_; }
  void embed(EmbeddingRequest request, EmbeddingCallback on_done) override {
    ++calls;
    inputs += static_cast<int>(request.inputs.size());
    Embeddings e;
    e.model = "bag-of-words";
    for (const auto& text : request.inputs) {
      std::vector<float> v(4096, 0.0f);
      for (auto term : detail::analyze_terms(text)) {
        const auto it = synonyms_.find(term);
        if (it != synonyms_.end()) term = it->second;
        v[std::hash<std::string>{}(term) % v.size()] += 1.0f;
      }
      e.vectors.push_back(std::move(v));
    }
    on_done(std::move(e));
  }
  std::atomic<int> calls{0};
  std::atomic<int> inputs{0};

 private:
  const std::map<std::string, std::string> synonyms_;
  const int batch_;
};

// Dense pseudo-random unit-free vectors seeded by the text: a stand-in for a model's vectors of
// unrelated texts, for comparing HNSW with exact search.
class RandomEmbedder final : public EmbeddingProvider {
 public:
  static constexpr std::size_t kDim = 24;
  std::string_view name() const override { return "random"; }
  std::string_view model() const override { return "random"; }
  int max_batch() const override { return 64; }
  void embed(EmbeddingRequest request, EmbeddingCallback on_done) override {
    Embeddings e;
    for (const auto& text : request.inputs) e.vectors.push_back(vector_of(text));
    on_done(std::move(e));
  }
  static std::vector<float> vector_of(const std::string& seed) {
    std::mt19937 gen(static_cast<std::uint32_t>(std::hash<std::string>{}(seed)));
    std::normal_distribution<float> normal;
    std::vector<float> v(kDim);
    for (auto& x : v) x = normal(gen);
    return v;
  }
};

// Waits (at most 20 s) until `ready` holds; the test asserts on the result.
bool eventually(const std::function<bool()>& ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::unique_ptr<KnowledgeBase> open(KnowledgeOptions options) {
  if (!options.logger) options.logger = null_logger();
  auto kb = make_knowledge_base(std::move(options));
  REQUIRE_MESSAGE(kb.ok(), kb.status().to_string());
  return std::move(kb).value();
}

std::vector<KnowledgePassage> find(KnowledgeBase& kb, const std::string& question, int k = 3) {
  auto r = kb.search({question, k, {}});
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  return std::move(r).value();
}

// Writes the file whole: into a new file, renamed over the old one, so that the knowledge base's
// checks never see it half written.
void write(const std::string& path, const std::string& text) {
  std::ofstream(path + ".new", std::ios::binary | std::ios::trunc) << text;
  std::filesystem::rename(path + ".new", path);
}

bool vectors_ready(const KnowledgeBase& kb) {
  const auto s = kb.stats();
  return s.passages > 0 && s.vectors_ready == s.passages;
}

constexpr const char* kGuide = R"(# Billing

Everything about paying us.

## Refunds

Refunds reach your card within five days of the request.

Refunded orders show a note in the order history.

## Invoices

Invoices are sent by e-mail every month.

# Доставка

## Сроки доставки

Заказы доставляются курьером за три рабочих дня.

## Возврат денег

Деньги за возвращённый заказ приходят на карту в течение пяти дней.
)";

}  // namespace

TEST_CASE("knowledge passages: Markdown is split by headings, paragraphs and code fences") {
  const auto passages = detail::split_markdown(R"(Text above every heading.

# Billing

Intro.

## Refunds ##

First paragraph.
Still the first.

Second paragraph.

```sh
# not a heading, inside the fence

echo done
```

### Cards
Card text.

# Доставка
Текст.
)",
                                               1200);
  REQUIRE(passages.size() == 5);
  CHECK(passages[0].heading.empty());
  CHECK(passages[0].text == "Text above every heading.");
  CHECK(passages[1].heading == "Billing");
  CHECK(passages[1].text == "Intro.");
  CHECK(passages[2].heading == "Billing › Refunds");
  // Paragraphs joined by a blank line; the fence kept whole, its "#" line no heading.
  CHECK(passages[2].text ==
        "First paragraph.\nStill the first.\n\nSecond paragraph.\n\n```sh\n# not a heading, "
        "inside the fence\n\necho done\n```");
  CHECK(passages[3].heading == "Billing › Refunds › Cards");
  CHECK(passages[4].heading == "Доставка");
  CHECK(passages[4].text == "Текст.");
}

TEST_CASE(
    "knowledge passages: paragraphs are joined up to the size, a longer one cut at sentences") {
  // Three paragraphs of 60 characters: two fit in 130, the third starts a passage.
  const std::string para(59, 'a');
  auto joined = detail::split_plain_text(para + ".\n\n" + para + ".\n\n" + para + ".\n", 130);
  REQUIRE(joined.size() == 2);
  CHECK(joined[0].text == para + ".\n\n" + para + ".");
  CHECK(joined[1].text == para + ".");

  // A long paragraph: cut after a sentence, each piece within the size.
  std::string sentences;
  for (int i = 0; i < 12; ++i) sentences += "Sentence number " + std::to_string(i) + " is here. ";
  const auto cut = detail::split_markdown("## Long\n" + sentences, 100);
  REQUIRE(cut.size() > 2);
  for (const auto& p : cut) {
    CHECK(detail::count_chars(p.text) <= 100);
    CHECK(p.text.back() == '.');
    CHECK(p.heading == "Long");
  }

  // Russian: the size counts characters, not bytes (each Cyrillic letter is two bytes).
  std::string russian;
  for (int i = 0; i < 10; ++i) russian += "Заказ номер " + std::to_string(i) + " уже в пути. ";
  const auto ru = detail::split_plain_text(russian, 100);
  REQUIRE(ru.size() >= 2);
  bool over_100_bytes = false;
  for (const auto& p : ru) {
    CHECK(detail::count_chars(p.text) <= 100);
    CHECK(p.text.back() == '.');
    over_100_bytes = over_100_bytes || p.text.size() > 100;
  }
  CHECK(over_100_bytes);
  // A word longer than the size is cut between characters, never inside one.
  std::string long_word;
  for (int i = 0; i < 150; ++i) long_word += "ж";
  const auto word = detail::split_plain_text(long_word, 100);
  REQUIRE(word.size() == 2);
  CHECK(detail::count_chars(word[0].text) == 100);
  CHECK(word[0].text.size() == 200);
  CHECK(detail::count_chars(word[1].text) == 50);
}

TEST_CASE("knowledge passages: search in both languages matches inflected forms") {
  testing::TempDir dir;
  write(dir.file("guide.md"), kGuide);
  KnowledgeOptions o;
  o.sources = {{dir.file("guide.md"), ""}};
  auto kb = open(o);
  CHECK(kb->stats().passages == 5);
  CHECK(kb->stats().sources == 1);
  CHECK(kb->embedding_model().empty());

  auto en = find(*kb, "When is my refund reaching the card?");
  REQUIRE(!en.empty());
  CHECK(en[0].source == "guide.md");
  CHECK(en[0].heading == "Billing › Refunds");
  CHECK(en[0].text.rfind("Refunds reach your card", 0) == 0);
  CHECK(en[0].score > 0);
  // "invoice" finds "Invoices"; "monthly" is no term of the passage, "invoice" is enough.
  auto invoices = find(*kb, "invoice sent");
  REQUIRE(!invoices.empty());
  CHECK(invoices[0].heading == "Billing › Invoices");

  // Russian, in other cases and numbers than the passage's words.
  auto ru = find(*kb, "Когда вернут деньги за заказ на карту?");
  REQUIRE(!ru.empty());
  CHECK(ru[0].heading == "Доставка › Возврат денег");
  auto delivery = find(*kb, "сколько дней идёт доставка заказов курьером");
  REQUIRE(!delivery.empty());
  CHECK(delivery[0].heading == "Доставка › Сроки доставки");

  // Unrelated questions find nothing.
  CHECK(find(*kb, "Tell me a joke about penguins").empty());
  CHECK(find(*kb, "Какая погода завтра в Москве?").empty());
  CHECK(find(*kb, "the and of").empty());
  CHECK(find(*kb, "").empty());
  // FTS5 syntax in a question is inert.
  CHECK(kb->search({"NOT OR \"refund* NEAR(", 3, {}}).ok());
  CHECK(kb->search({"refund", 0, {}}).status().code() == StatusCode::kInvalidArgument);
  // top_k bounds the list.
  CHECK(find(*kb, "refunds invoices orders card", 1).size() == 1);
}

TEST_CASE("knowledge passages: with no source, the sample answers in the language asked") {
  auto kb = open({});
  const auto s = kb->stats();
  CHECK(s.sources == 2);
  CHECK(s.passages > 20);
  auto ru = find(*kb, "Как подключить бота к Телеграму?");
  REQUIRE(!ru.empty());
  CHECK(ru[0].source == "llmassist-faq.ru.md");
  CHECK(ru[0].heading == "Как подключить бота к Telegram?");
  CHECK(ru[0].text.find("@BotFather") != std::string::npos);
  auto en = find(*kb, "How do I connect the bot to Telegram?");
  REQUIRE(!en.empty());
  CHECK(en[0].source == "llmassist-faq.md");
  CHECK(en[0].heading == "How do I connect the bot to Telegram?");
  CHECK(find(*kb, "где хранятся мои сообщения")[0].heading == "Где хранятся сообщения?");

  KnowledgeOptions none;
  none.use_sample = false;
  CHECK(make_knowledge_base(none).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("knowledge passages: missing and malformed files are refused with the place") {
  testing::TempDir dir;
  auto status_of = [&](const std::string& name, const std::string& text,
                       const std::string& format = "") {
    write(dir.file(name), text);
    KnowledgeOptions o;
    o.sources = {{dir.file(name), format}};
    o.logger = null_logger();
    return make_knowledge_base(o).status();
  };
  Status s = status_of("bad.md", "# Title\n\nfine\n\nbroken \xff byte\n");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("bad.md:5: not valid UTF-8") != std::string::npos);
  s = status_of("faq.json", R"([{"question": "q", "answr": "typo"}])");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("$[0].answr") != std::string::npos);
  s = status_of("faq.md", "## Question\n\n## Other\nAnswer.\n", "faq");
  CHECK(s.message().find("faq.md:1") != std::string::npos);
  s = status_of("notes.rtf", "text");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("give its format") != std::string::npos);
  CHECK(status_of("notes.rtf", "plain words", "text").ok());
  CHECK(status_of("x.md", "text", "docx").message().find("unknown format") != std::string::npos);

  KnowledgeOptions missing;
  missing.sources = {{dir.file("nope.md"), ""}};
  s = make_knowledge_base(missing).status();
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(s.message().find("nope.md") != std::string::npos);
  KnowledgeOptions small;
  small.max_passage_chars = 50;
  CHECK(make_knowledge_base(small).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("knowledge passages: hybrid search fuses the term and vector rankings") {
  testing::TempDir dir;
  write(dir.file("guide.md"), kGuide);
  KnowledgeOptions o;
  o.sources = {{dir.file("guide.md"), ""}};
  o.reload_interval = std::chrono::milliseconds(0);
  auto terms_only = open(o);
  // "reimbursement" is no word of the guide: the terms find nothing.
  CHECK(find(*terms_only, "reimbursement").empty());

  auto embedder = std::make_shared<BagOfWordsEmbedder>(
      std::map<std::string, std::string>{{"reimburs", "refund"}}, 4);
  o.embedder = embedder;
  auto kb = open(o);
  CHECK(kb->embedding_model() == "bag-of-words");
  REQUIRE(eventually([&] { return vectors_ready(*kb); }));
  CHECK(embedder->inputs.load() == 5);
  CHECK(embedder->calls.load() == 2);  // batches of max_batch() = 4
  CHECK_FALSE(kb->stats().hnsw);

  // The vector ranking alone finds the refunds passage: rank 1 there, in no term ranking.
  auto by_meaning = find(*kb, "reimbursement");
  REQUIRE(!by_meaning.empty());
  CHECK(by_meaning[0].heading == "Billing › Refunds");
  CHECK(by_meaning[0].score == doctest::Approx(1.0 / 61));
  // First in both rankings: 1/61 twice.
  auto both = find(*kb, "refunds reach the card");
  REQUIRE(!both.empty());
  CHECK(both[0].heading == "Billing › Refunds");
  CHECK(both[0].score == doctest::Approx(2.0 / 61));
  for (std::size_t i = 1; i < both.size(); ++i) CHECK(both[i].score <= both[i - 1].score);
  // Unrelated questions still find nothing.
  CHECK(find(*kb, "Tell me a joke about penguins").empty());

  // A vector the caller made: the same answer without a request of the knowledge base's own.
  auto v = embed_sync(*embedder, EmbeddingRequest{{"reimbursement"}, {}, {}});
  REQUIRE(v.ok());
  const int calls = embedder->calls;
  auto shared = kb->search({"reimbursement", 3, v->vectors[0]});
  REQUIRE(shared.ok());
  REQUIRE(!shared->empty());
  CHECK((*shared)[0].heading == "Billing › Refunds");
  CHECK(embedder->calls == calls);
  CHECK(kb->search({"x", 3, {1.0f, 2.0f}}).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("knowledge passages: the HNSW index finds what exact search finds") {
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 600; ++i) {
    text += "Paragraph " + std::to_string(i) +
            " stands alone: long enough that no two of them share a passage.\n\n";
  }
  write(dir.file("many.txt"), text);
  KnowledgeOptions o;
  o.sources = {{dir.file("many.txt"), ""}};
  o.max_passage_chars = 100;
  o.min_similarity = -1.0;  // every passage is a candidate: compare the rankings themselves
  o.reload_interval = std::chrono::milliseconds(0);
  o.embedder = std::make_shared<RandomEmbedder>();
  auto exact = open(o);
  o.hnsw_min_passages = 500;
  auto hnsw = open(o);
  REQUIRE(eventually([&] { return vectors_ready(*exact) && vectors_ready(*hnsw); }));
  CHECK(exact->stats().passages == 600);
  CHECK_FALSE(exact->stats().hnsw);
  CHECK(hnsw->stats().hnsw);

  double recall = 0;
  const int queries = 50;
  for (int q = 0; q < queries; ++q) {
    const auto vec = RandomEmbedder::vector_of("query " + std::to_string(q));
    auto a = exact->search({"", 10, vec});
    auto b = hnsw->search({"", 10, vec});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(a->size() == 10);
    REQUIRE(b->size() == 10);
    std::set<std::string> truth;
    for (const auto& p : *a) truth.insert(p.text);
    int hits = 0;
    for (const auto& p : *b) hits += static_cast<int>(truth.count(p.text));
    recall += hits / 10.0;
  }
  recall /= queries;
  MESSAGE("HNSW recall@10 against exact search over 600 passages: " << recall);
  CHECK(recall >= 0.95);
}

TEST_CASE("knowledge passages: a changed file is picked up, a malformed one keeps the old index") {
  testing::TempDir dir;
  const std::string path = dir.file("notes.md");
  write(path, "# Animals\n\nWalruses live in the Arctic.\n");
  auto logger = std::make_shared<testing::CapturingLogger>();
  KnowledgeOptions o;
  o.sources = {{path, ""}};
  o.reload_interval = std::chrono::milliseconds(10);
  o.logger = logger;
  auto kb = open(o);
  REQUIRE(find(*kb, "walrus").size() == 1);

  write(path,
        "# Animals\n\nPenguins live in the Antarctic, far from any walrus herd.\n\n"
        "## Birds\n\nAlbatrosses fly far.\n");
  REQUIRE(eventually([&] { return kb->stats().passages == 2; }));
  auto penguins = find(*kb, "penguin");
  REQUIRE(penguins.size() == 1);
  CHECK(penguins[0].text.rfind("Penguins live", 0) == 0);
  CHECK(find(*kb, "albatross")[0].heading == "Animals › Birds");
  CHECK(kb->stats().last_error.empty());

  // Malformed now: the old index stays, the error is shown and logged once.
  write(path, "# Animals\n\nbroken \xfe text, a longer file than before\n");
  REQUIRE(eventually([&] { return !kb->stats().last_error.empty(); }));
  CHECK(kb->stats().last_error.find("notes.md:3: not valid UTF-8") != std::string::npos);
  const std::size_t checks = kb->stats().checks;
  REQUIRE(eventually([&] { return kb->stats().checks >= checks + 5; }));
  CHECK(find(*kb, "penguin").size() == 1);
  int logged = 0;
  for (const auto& line : logger->lines()) {
    logged += line.find("not valid UTF-8") != std::string::npos ? 1 : 0;
  }
  CHECK(logged == 1);

  // Mended: picked up again, the error cleared.
  write(path, "# Animals\n\nSeals, many seals.\n");
  REQUIRE(eventually([&] { return kb->stats().last_error.empty(); }));
  CHECK(find(*kb, "seal").size() == 1);
  CHECK(find(*kb, "penguin").empty());
}

TEST_CASE("knowledge passages: an unchanged passage is never embedded twice") {
  testing::TempDir dir;
  const std::string path = dir.file("guide.md");
  write(path, kGuide);
  std::shared_ptr<MessageStore> store = testing::make_memory_store(system_clock());
  KnowledgeOptions o;
  o.sources = {{path, ""}};
  o.reload_interval = std::chrono::milliseconds(10);
  o.cache = store;

  auto first_embedder = std::make_shared<BagOfWordsEmbedder>();
  o.embedder = first_embedder;
  {
    auto kb = open(o);
    REQUIRE(eventually([&] { return vectors_ready(*kb); }));
    CHECK(first_embedder->inputs.load() == 5);
  }
  // The cache's key: the model and the SHA-256 (hex) of the passage as embedded, its heading
  // path, a blank line, its text.
  const std::string embedded = "Billing › Invoices\n\nInvoices are sent by e-mail every month.";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(embedded.data()), embedded.size(), digest);
  std::string hex;
  for (unsigned char b : digest) hex += fmt::format("{:02x}", b);
  const std::vector<std::string> keys = {hex};
  auto cached = store->cached_embeddings("bag-of-words", keys);
  REQUIRE(cached.ok());
  REQUIRE(cached->size() == 1);
  CHECK((*cached)[0].size() == 4096);
  // A new knowledge base over the same cache (a restart): nothing to embed.
  auto second_embedder = std::make_shared<BagOfWordsEmbedder>();
  o.embedder = second_embedder;
  auto kb = open(o);
  REQUIRE(eventually([&] { return vectors_ready(*kb); }));
  CHECK(second_embedder->inputs.load() == 0);

  // One passage changed on disk: only it is embedded.
  const auto built = kb->stats().last_reload;
  std::string changed = kGuide;
  changed.replace(changed.find("every month"), 11, "every week, on Mondays");
  write(path, changed);
  REQUIRE(eventually([&] { return kb->stats().last_reload != built && vectors_ready(*kb); }));
  CHECK(second_embedder->inputs.load() == 1);
  // (A search embeds its question: one more input.)
  CHECK(find(*kb, "invoices Mondays")[0].text.find("Mondays") != std::string::npos);
  CHECK(second_embedder->inputs.load() == 2);

  // A store without the cache (kUnimplemented): vectors are made all the same.
  SqliteStoreOptions so;
  so.path = dir.file("store.db");
  so.logger = null_logger();
  auto sqlite = open_sqlite_store(so);
  REQUIRE(sqlite.ok());
  o.cache = std::move(sqlite).value();
  auto third_embedder = std::make_shared<BagOfWordsEmbedder>();
  o.embedder = third_embedder;
  auto uncached = open(o);
  REQUIRE(eventually([&] { return vectors_ready(*uncached); }));
  CHECK(third_embedder->inputs.load() == 5);
}
