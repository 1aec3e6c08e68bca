// llmassist-admin migrate: moving a SQLite deployment into PostgreSQL from the command line, over
// import_sqlite_into_postgres() (llmassist/postgres/sqlite_import.h), with each table's counts
// printed.
//
//   migrate --from sqlite:PATH --to postgresql://USER@HOST/DB [--to-password-env NAME]
//           [--to-schema NAME] [--json]
//
// Contract: the exit codes of command_line.h (0 copied and verified, 1 refused or failed, 2 a
// wrong command line). The password is read from the environment variable named, never from the
// command line; it appears in no output. Never throws.
//
// Thread-safety: a call uses its streams and `getenv` only.
#pragma once

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmassist {

// `args` start with "migrate". `getenv` reads the environment (a test passes its own).
int run_migrate_command(
    const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// The command and its options, for a program's --help.
[[nodiscard]] std::string_view migrate_command_help();

}  // namespace llmassist
