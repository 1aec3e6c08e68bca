#include "programs/migrate_command.h"

#include <fmt/format.h>

#include <ostream>

#include "llmassist/postgres/postgres_store.h"
#include "llmassist/postgres/sqlite_import.h"
#include "programs/command_line.h"

namespace llmassist {

std::string_view migrate_command_help() {
  return R"(Moving a SQLite deployment to PostgreSQL (stop the bot first):
  migrate --from sqlite:PATH --to postgresql://USER@HOST:PORT/DATABASE [--to-password-env NAME]
          [--to-schema NAME] [--json]
                         copies every table (messages, replies, memory, accounts) into an
                         empty PostgreSQL schema in one transaction, ids kept, and prints each
                         table's rows on both sides; any difference or error copies nothing
)";
}

int run_migrate_command(
    const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  detail::Parsed p;
  const detail::Spec spec{.values = {"--from", "--to", "--to-password-env", "--to-schema"}};
  if (auto bad = detail::parse_args(args, spec, p)) return detail::usage(err, *bad);
  if (p.flags.count("--help")) {
    out << migrate_command_help();
    return detail::kExitOk;
  }
  if (!p.positional.empty()) {
    return detail::usage(err, fmt::format("migrate takes no argument \"{}\"", p.positional[0]));
  }
  const std::string from = p.values.count("--from") ? p.values.at("--from") : "";
  const std::string to = p.values.count("--to") ? p.values.at("--to") : "";
  if (!from.starts_with("sqlite:") || from.size() == 7) {
    return detail::usage(err, "migrate needs --from sqlite:PATH (the SQLite database file)");
  }
  if (!is_postgres_url(to)) {
    return detail::usage(err, "migrate needs --to postgresql://... (the PostgreSQL database)");
  }
  SqliteImportOptions options;
  options.sqlite_path = from.substr(7);
  options.to.url = to;
  if (p.values.count("--to-schema")) options.to.schema = p.values.at("--to-schema");
  options.to.logger = null_logger();
  if (p.values.count("--to-password-env")) {
    const std::string& name = p.values.at("--to-password-env");
    auto password = getenv(name);
    if (!password || password->empty()) {
      return detail::fail(err,
                          invalid_argument(fmt::format(
                              "the environment variable {} (--to-password-env) is not set", name)));
    }
    options.to.password = *password;
  }
  auto counts = import_sqlite_into_postgres(options);
  if (!counts.ok()) return detail::fail(err, counts.status());
  if (p.flags.count("--json")) {
    nlohmann::json tables = nlohmann::json::array();
    for (const TableCount& t : *counts) {
      tables.push_back(
          {{"table", t.table}, {"sqlite_rows", t.sqlite_rows}, {"postgres_rows", t.postgres_rows}});
    }
    detail::print_json(out, {{"tables", tables}});
    return detail::kExitOk;
  }
  out << fmt::format("{:<20} {:>12} {:>12}\n", "table", "sqlite", "postgresql");
  for (const TableCount& t : *counts) {
    out << fmt::format("{:<20} {:>12} {:>12}\n", t.table, t.sqlite_rows, t.postgres_rows);
  }
  out << fmt::format("copied {} tables into {} (schema {}); every count matches\n", counts->size(),
                     describe_postgres_url(to), options.to.schema);
  return detail::kExitOk;
}

}  // namespace llmassist
