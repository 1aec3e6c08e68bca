// Shared by the store and memory benchmarks: opening a SQLite store or exiting, timing,
// percentiles of latencies, and the random vectors and skewed words that fill a recall index.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "llmassist/sqlite/sqlite_store.h"

namespace llmassist::bench {

using Steady = std::chrono::steady_clock;

inline std::unique_ptr<MessageStore> open_store_or_die(const std::string& path, SqliteSync sync) {
  SqliteStoreOptions options;
  options.path = path;
  options.sync = sync;
  options.logger = null_logger();
  auto store = open_sqlite_store(options);
  if (!store.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), store.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

inline double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

inline double micros_since(Steady::time_point start) {
  return std::chrono::duration<double, std::micro>(Steady::now() - start).count();
}

struct Percentiles {
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

// Of a non-empty sample.
inline Percentiles percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  return {at(0.50), at(0.99), v.back()};
}

inline void print_latency(const char* what, const std::vector<double>& us) {
  if (us.empty()) return;
  const auto p = percentiles(us);
  std::printf("%s: p50 %.1f us, p99 %.1f us, max %.1f us (%zu queries)\n", what, p.p50, p.p99,
              p.max, us.size());
}

// A random vector of length 1.
inline std::vector<float> unit_vector(std::mt19937& rng, int dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<std::size_t>(dim));
  double sum = 0;
  for (float& x : v) {
    x = normal(rng);
    sum += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(sum));
  return v;
}

// A rank of a 20,000-word vocabulary with Zipf's law (the chance of rank r falls as 1/r), from
// rank `offset` of the unskipped law on: offset 1 is a text's every word, a larger one leaves
// out the commonest words as the analyser's function words do.
inline int zipf_rank(std::mt19937& rng, int offset = 1) {
  const double top = 20000.0 + offset;
  const double r = offset * std::pow(top / offset, std::uniform_real_distribution<>(0, 1)(rng));
  return std::min(19999, static_cast<int>(r) - offset);
}

}  // namespace llmassist::bench
