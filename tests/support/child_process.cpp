#include "support/child_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

extern char** environ;

namespace llmassist::testing {

namespace {

// This process's environment with `extra` added (an entry replaces one of the same name).
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
  auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    bool replaced = false;
    for (const auto& x : extra) replaced = replaced || name_of(x) == name_of(entry);
    if (!replaced) out.emplace_back(entry);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

// Everything the child needs is prepared before fork(): the test process has threads, and the
// child may only make async-signal-safe calls (no allocation) until exec.
pid_t spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::string>& env) {
  std::vector<std::string> arg_strings = args;
  std::vector<std::string> env_strings = environment_with(env);
  const std::vector<char*> argv = pointers(arg_strings);
  const std::vector<char*> envp = pointers(env_strings);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    if (null >= 0) ::dup2(null, 0);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (out >= 0) ::close(out);
  if (null >= 0) ::close(null);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_in_folder(const std::string& folder, const std::string& program, const std::string& args,
                  const std::string& input, const std::string& log) {
  const pid_t pid = spawn(
      {"/bin/sh", "-c", "cd \"$0\" && exec \"$1\" " + args + " < \"$2\"", folder, program, input},
      log);
  return pid > 0 ? wait_exit(pid) : -1;
}

}  // namespace llmassist::testing
