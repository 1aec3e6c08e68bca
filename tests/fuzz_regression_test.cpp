// Every fuzz target (fuzz/<name>_fuzz.cpp, compiled into this suite) run over its seeds
// (fuzz/corpus/<name>/) and over the inputs that once made it crash
// (tests/data/fuzz-regressions/<name>/), so that what was fixed stays fixed, under the normal
// and the sanitizer builds alike. A target checks its invariants itself and traps on a
// violation, which fails this test (doctest reports the signal with the input's path).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "fuzz_targets.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs_in(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("fuzz targets: every seed and every regression input runs clean") {
  REQUIRE(std::size(kFuzzTargets) >= 6);
  for (const FuzzTarget& target : kFuzzTargets) {
    const std::string name(target.name);
    const auto seeds = inputs_in(fs::path(LLMASSIST_FUZZ_CORPUS_DIR) / name);
    INFO("target " << name);
    CHECK_MESSAGE(!seeds.empty(), "a fuzz target without seeds in fuzz/corpus/" << name);
    auto inputs = seeds;
    const auto regressions = inputs_in(fs::path(LLMASSIST_FUZZ_REGRESSIONS_DIR) / name);
    inputs.insert(inputs.end(), regressions.begin(), regressions.end());
    for (const fs::path& path : inputs) {
      INFO("input " << path.string());
      const std::string bytes = read_bytes(path);
      CHECK(target.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) == 0);
    }
  }
}

TEST_CASE("fuzz targets: every corpus and regression folder belongs to a target") {
  std::set<std::string> names;
  for (const FuzzTarget& target : kFuzzTargets) names.emplace(target.name);
  for (const char* root : {LLMASSIST_FUZZ_CORPUS_DIR, LLMASSIST_FUZZ_REGRESSIONS_DIR}) {
    if (!fs::is_directory(root)) continue;
    for (const auto& entry : fs::directory_iterator(root)) {
      INFO("folder " << entry.path().string());
      CHECK(names.count(entry.path().filename().string()) == 1);
    }
  }
}
