// llmassist-bench-llm: what the LLM side costs.
//
// 1. N concurrent completions (default 1,000) through one provider, on its HTTP client's one I/O
//    thread, against a mock server that answers each after 1 s: throughput, wall time, the
//    process's peak thread count (the mock server and this sampler add one each, printed apart),
//    peak RSS and peak private memory (Private_Clean + Private_Dirty of /proc/self/smaps_rollup)
//    while they are in flight. OpenAI-compatible whole answers and streamed ones (SSE), then
//    Ollama's whole and streamed (NDJSON) ones.
// 2. Failover cost, through a FallbackChain: a primary that refuses connections, then a primary
//    that hangs until its first-byte timeout, each in front of a healthy backup that answers at
//    once. Per request latency before and after the primary's circuit opens, against the backup
//    alone.
//
// Usage: llmassist-bench-llm [completions=1000] [delay_ms=1000]
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "llmassist/fallback_chain.h"
#include "llmassist/providers/ollama_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "support/bench_server.h"

using namespace llmassist;
using namespace std::chrono_literals;
using Steady = bench::Clock;
using bench::DelayingServer;
using bench::MemoryPeak;
using bench::private_kb;
using bench::proc_status;

namespace {

const std::string kAnswer =
    R"({"id":"chatcmpl-b","object":"chat.completion","model":"mock","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"Open Settings, then Security, then Reset."},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":9}})";
const std::string kStream =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Open Settings, \"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"then Security.\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";
const std::string kOllamaAnswer =
    R"({"model":"mock","message":{"role":"assistant","content":"Open Settings, then Security."},)"
    R"("done":true,"done_reason":"stop","prompt_eval_count":40,"eval_count":9})";
const std::string kOllamaStream =
    "{\"model\":\"mock\",\"message\":{\"role\":\"assistant\",\"content\":\"Open Settings, \"},"
    "\"done\":false}\n"
    "{\"model\":\"mock\",\"message\":{\"role\":\"assistant\",\"content\":\"then Security.\"},"
    "\"done\":false}\n"
    "{\"model\":\"mock\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
    "\"done_reason\":\"stop\",\"prompt_eval_count\":40,\"eval_count\":9}\n";

std::shared_ptr<LlmProvider> provider(const std::string& name, const std::string& url,
                                      std::chrono::milliseconds first_byte = 30s) {
  OpenAiProviderOptions o;
  o.name = name;
  o.base_url = url;
  o.model = "mock";
  o.first_byte_timeout = first_byte;
  o.logger = null_logger();
  auto p = make_openai_provider(o);
  if (!p.ok()) {
    fmt::print(stderr, "{}\n", p.status().to_string());
    std::exit(1);
  }
  return std::shared_ptr<LlmProvider>(std::move(p).value());
}

CompletionRequest question() {
  CompletionRequest r;
  r.messages = {{Role::kSystem, "You are a support assistant."},
                {Role::kUser, "How do I reset my password?"}};
  return r;
}

std::shared_ptr<LlmProvider> ollama(const std::string& url) {
  OllamaProviderOptions o;
  o.name = "ollama";
  o.base_url = url;
  o.model = "mock";
  o.logger = null_logger();
  auto p = make_ollama_provider(o);
  if (!p.ok()) {
    fmt::print(stderr, "{}\n", p.status().to_string());
    std::exit(1);
  }
  return std::shared_ptr<LlmProvider>(std::move(p).value());
}

void concurrent(int n, std::chrono::milliseconds delay, bool stream, bool use_ollama) {
  const std::string& body =
      use_ollama ? (stream ? kOllamaStream : kOllamaAnswer) : (stream ? kStream : kAnswer);
  DelayingServer server(
      delay, body,
      stream ? (use_ollama ? "application/x-ndjson" : "text/event-stream") : "application/json");
  const long threads_before = proc_status("Threads");
  const long rss_before = proc_status("VmRSS");
  const long private_before = private_kb();
  auto p = use_ollama ? ollama(fmt::format("http://127.0.0.1:{}", server.port()))
                      : provider("mock", fmt::format("http://127.0.0.1:{}/v1", server.port()));
  MemoryPeak memory;
  std::atomic<int> done{0};
  std::atomic<int> ok{0};
  const auto start = Steady::now();
  for (int i = 0; i < n; ++i) {
    TokenCallback tokens;
    if (stream) tokens = [](std::string_view) { return true; };
    p->complete(question(), tokens, [&](Result<Completion> r) {
      if (r.ok() && !r->text.empty()) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  long peak = 0;
  while (done.load() < n && Steady::now() - start < 60s) {
    peak = std::max(peak, proc_status("Threads"));
    memory.sample();
    std::this_thread::sleep_for(5ms);
  }
  const double wall = std::chrono::duration<double>(Steady::now() - start).count();
  fmt::print(
      "{} {} concurrent {} completions at {} ms: {} ok in {:.3f} s wall ({:.0f} per s); "
      "peak threads {} ({} before the provider: main + mock server); peak RSS {:.1f} MiB "
      "(+{:.1f}), peak private {:.1f} MiB (+{:.1f})\n",
      use_ollama ? "Ollama" : "OpenAI", n,
      stream ? (use_ollama ? "streamed (NDJSON)" : "streamed (SSE)") : "whole", delay.count(),
      ok.load(), wall, ok.load() / wall, peak, threads_before, memory.peak_rss_kb / 1024.0,
      (memory.peak_rss_kb - rss_before) / 1024.0, memory.peak_private_kb / 1024.0,
      (memory.peak_private_kb - private_before) / 1024.0);
}

double ms_since(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Latencies of `count` sequential requests through `chain`.
std::vector<double> sequential(LlmProvider& chain, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i) {
    const auto t = Steady::now();
    auto r = complete_sync(chain, question());
    if (!r.ok()) fmt::print(stderr, "request failed: {}\n", r.status().to_string());
    out.push_back(ms_since(t));
  }
  return out;
}

void failover() {
  DelayingServer backup_server(0ms, kAnswer, "application/json");
  const std::string backup_url = fmt::format("http://127.0.0.1:{}/v1", backup_server.port());
  FallbackChainOptions o;
  o.failure_threshold = 3;
  o.cooldown = 60s;
  o.logger = null_logger();

  auto alone = make_fallback_chain({provider("backup", backup_url)}, o).value();
  sequential(*alone, 20);  // warm the connection
  const double base = median(sequential(*alone, 200));
  fmt::print("backup alone: median {:.3f} ms\n", base);

  // Port 1: nothing listens, the connection is refused at once.
  auto refused =
      make_fallback_chain(
          {provider("primary", "http://127.0.0.1:1/v1"), provider("backup", backup_url)}, o)
          .value();
  auto lat = sequential(*refused, 203);
  const std::vector<double> before(lat.begin(), lat.begin() + 3);
  const std::vector<double> after(lat.begin() + 3, lat.end());
  fmt::print(
      "primary refuses connections: first 3 requests {:.3f} / {:.3f} / {:.3f} ms "
      "(median extra {:.3f} ms); after its circuit opened: median {:.3f} ms (extra {:.3f} ms)\n",
      before[0], before[1], before[2], median(before) - base, median(after), median(after) - base);

  // A primary that accepts and never answers: each try costs its first-byte timeout (1 s here).
  DelayingServer hanging(std::chrono::hours(1), kAnswer, "application/json");
  auto hangs = make_fallback_chain(
                   {provider("primary", fmt::format("http://127.0.0.1:{}/v1", hanging.port()), 1s),
                    provider("backup", backup_url)},
                   o)
                   .value();
  lat = sequential(*hangs, 23);
  fmt::print(
      "primary hangs (first-byte timeout 1 s): first 3 requests {:.0f} / {:.0f} / {:.0f} ms; "
      "after its circuit opened: median {:.3f} ms\n",
      lat[0], lat[1], lat[2], median(std::vector<double>(lat.begin() + 3, lat.end())));
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  const auto delay = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 1000);
  // Each completion holds two descriptors in this process (client and server side).
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  concurrent(n, delay, false, false);
  concurrent(n, delay, true, false);
  concurrent(n, delay, false, true);
  concurrent(n, delay, true, true);
  failover();
  return 0;
}
