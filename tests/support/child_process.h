// Test fixtures for tests that run programs: starting one with its output in a log file, waiting
// for it, and waiting for a condition.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace llmassist::testing {

// Runs `args` (args[0] a path to the program) with standard input from /dev/null and its output
// appended to `log`. `env` entries ("NAME=value") are added to this process's environment,
// replacing variables of the same name. Returns the child's pid (-1 when fork fails).
pid_t spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::string>& env = {});

// Waits for the child to end: its exit code, or 128 + the signal that ended it.
int wait_exit(pid_t pid);

// Runs `program` with `args` in `folder`, its standard input from the file `input` there, its
// output appended to `log`, and waits for it: its exit code (as wait_exit), -1 when it could not
// start. `args` are given to the shell as they are (quote what needs it).
int run_in_folder(const std::string& folder, const std::string& program, const std::string& args,
                  const std::string& input, const std::string& log);

// Polls `predicate` until it holds or `timeout` passes; the last answer.
template <typename P>
bool eventually(P predicate, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}

}  // namespace llmassist::testing
