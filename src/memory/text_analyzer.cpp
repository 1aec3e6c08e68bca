#include "memory/text_analyzer.h"

#include <libstemmer.h>

#include <memory>
#include <string_view>
#include <unordered_set>

#include "core/utf8.h"

namespace llmassist::detail {
namespace {

// Words too common to tell one text from another.
const std::unordered_set<std::string_view>& stopwords() {
  static const std::unordered_set<std::string_view> kWords = {
      "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
      "be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing",
      "for", "from", "get", "got", "had", "has", "have", "he", "hello", "her", "here", "hers", "hi",
      "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "like", "me", "my",
      "need", "no", "not", "now", "of", "on", "once", "only", "or", "other", "our", "out", "please",
      "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then",
      "there", "these", "they", "this", "those", "to", "too", "up", "us", "very", "want", "was",
      "we", "were", "what", "when", "where", "which", "who", "whom", "why", "will", "with", "would",
      "you", "your", "yours",
      // Russian
      "а", "без", "бы", "был", "была", "были", "было", "быть", "в", "вам", "вас", "весь", "во",
      "вот", "все", "всё", "вы", "где", "да", "даже", "для", "до", "его", "ее", "её", "ей", "если",
      "есть", "еще", "ещё", "же", "за", "здесь", "и", "из", "или", "им", "их", "к", "как", "какой",
      "когда", "кто", "ли", "мне", "мной", "мой", "моя", "мы", "на", "над", "нам", "нас", "не",
      "него", "нее", "неё", "нет", "ни", "них", "но", "ну", "о", "об", "он", "она", "они", "оно",
      "от", "очень", "по", "под", "при", "привет", "пожалуйста", "с", "со", "так", "также", "там",
      "те", "тем", "то", "того", "тоже", "только", "том", "ты", "у", "уже", "хочу", "чем", "что",
      "чтобы", "эта", "эти", "это", "этот", "я"};
  return kWords;
}

// Letters and digits: ASCII, and every code point from U+00C0 on except punctuation, symbols
// and spaces of the common blocks, so that words of any script stay whole.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c < 0xc0) return c == 0xaa || c == 0xb5 || c == 0xba;
  if (c == 0xd7 || c == 0xf7) return false;
  if (c >= 0x2000 && c <= 0x2bff) return false;  // punctuation, symbols, arrows, shapes
  if (c >= 0x3000 && c <= 0x303f) return false;  // CJK punctuation
  if (c >= 0xfe30 && c <= 0xfe4f) return false;
  if (c >= 0xff00 && c <= 0xff0f) return false;
  if (c >= 0x1f000) return false;  // emoji and pictographs
  return true;
}

char32_t fold(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 0x20;
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 0x20;       // Latin-1 capitals
  if (c >= 0x100 && c <= 0x17f) return (c % 2 == 0) ? c + 1 : c;  // Latin Extended-A pairs
  if (c >= 0x410 && c <= 0x42f) return c + 0x20;                  // А-Я
  if (c == 0x401 || c == 0x451) return 0x435;                     // Ё, ё -> е
  if (c >= 0x400 && c <= 0x40f) return c + 0x50;                  // Ѐ-Џ
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

struct StemmerDeleter {
  void operator()(sb_stemmer* s) const { sb_stemmer_delete(s); }
};
using Stemmer = std::unique_ptr<sb_stemmer, StemmerDeleter>;

// This thread's stemmer for `language` ("english", "russian"); null if libstemmer has none.
sb_stemmer* stemmer_for(bool russian) {
  thread_local Stemmer english(sb_stemmer_new("english", "UTF_8"));
  thread_local Stemmer russian_stemmer(sb_stemmer_new("russian", "UTF_8"));
  return russian ? russian_stemmer.get() : english.get();
}

std::string stem(const std::string& word, bool cyrillic, bool latin) {
  if (!cyrillic && !latin) return word;
  sb_stemmer* s = stemmer_for(cyrillic);
  if (s == nullptr) return word;
  const sb_symbol* out = sb_stemmer_stem(s, reinterpret_cast<const sb_symbol*>(word.data()),
                                         static_cast<int>(word.size()));
  if (out == nullptr) return word;  // out of memory: the word unstemmed
  return std::string(reinterpret_cast<const char*>(out),
                     static_cast<std::size_t>(sb_stemmer_length(s)));
}

}  // namespace

std::string fold_case(std::string_view word) {
  std::string out;
  out.reserve(word.size());
  for (std::size_t i = 0; i < word.size();) {
    const Utf8Char ch = decode_utf8(word, i);
    if (ch.valid) {
      append_utf8(out, fold(ch.code_point));
    } else {
      out += word[i];
    }
    i += ch.length;
  }
  return out;
}

std::vector<std::string> analyze_terms(std::string_view text, AnalyzeOptions options) {
  std::vector<std::string> terms;
  std::unordered_set<std::string> seen;
  std::string word;
  std::size_t letters = 0;
  bool cyrillic = false;
  bool latin = false;
  auto flush = [&] {
    if (word.empty()) return;
    const bool keep = letters > 1 || (letters == 1 && !latin && !cyrillic);  // "7" stays
    if (keep && (options.keep_stopwords || !stopwords().count(word))) {
      std::string term = stem(word, cyrillic, latin && !cyrillic);
      if (!options.unique || seen.insert(term).second) terms.push_back(std::move(term));
    }
    word.clear();
    letters = 0;
    cyrillic = latin = false;
  };
  for (std::size_t i = 0; i < text.size();) {
    if (options.max_terms != 0 && terms.size() >= options.max_terms) break;
    const Utf8Char ch = decode_utf8(text, i);
    i += ch.length;
    if (!ch.valid || !is_word_char(ch.code_point)) {
      flush();
      continue;
    }
    const char32_t c = fold(ch.code_point);
    if (c >= 0x400 && c <= 0x4ff) cyrillic = true;
    if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0x17f)) latin = true;
    append_utf8(word, c);
    ++letters;
  }
  if (options.max_terms == 0 || terms.size() < options.max_terms) flush();
  return terms;
}

std::string analyzed_text(std::string_view text) {
  std::string out;
  for (const auto& t : analyze_terms(text)) {
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

std::string fts_term(std::string_view term) {
  std::string out = "\"";
  for (char c : term) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string fts_any_of(const std::vector<std::string>& terms) {
  std::string out;
  for (const auto& t : terms) {
    if (!out.empty()) out += " OR ";
    out += fts_term(t);
  }
  return out;
}

}  // namespace llmassist::detail
