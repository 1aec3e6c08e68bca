#include "bot/doctor.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bot/bot_parts.h"
#include "core/json_text.h"
#include "llmassist/bot/bot.h"
#include "llmassist/bot/provider_config.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/telegram/telegram_transport.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {

std::vector<DoctorCheck> run_doctor(const BotConfig& config,
                                    std::chrono::milliseconds provider_timeout) {
  std::vector<DoctorCheck> out;
  auto quiet = null_logger();
  {
    const bool postgres = is_postgres_url(config.database);
    auto store = detail::open_store(config, quiet);
    // A PostgreSQL URL is shown without its secrets; the store's errors carry it so too.
    out.push_back({"database", store.ok(),
                   !store.ok() ? store.status().message()
                   : postgres  ? fmt::format("{} (schema {}): connected, schema up to date",
                                             describe_bot_database(config), config.database_schema)
                               : config.database + ": opened, schema up to date"});
    if (!postgres && detail::world_readable(config.database)) {
      out.push_back({"database file", false,
                     config.database + " may be read by every user of this machine: chmod 600 "
                                       "it"});
    }
  }
  if (config.admin) {
    auto accounts = open_account_store(config, quiet);
    auto list = accounts.ok() ? (*accounts)->list_accounts()
                              : Result<std::vector<Account>>(accounts.status());
    const bool has_admin =
        list.ok() && std::any_of(list->begin(), list->end(), [](const Account& a) {
          return a.role == AccountRole::kAdmin && !a.disabled;
        });
    out.push_back({"admin page", has_admin,
                   !list.ok()  ? list.status().message()
                   : has_admin ? fmt::format("{} account(s); the page will be on {}", list->size(),
                                             config.admin->listen)
                               : "no admin account can sign in: create one with "
                                 "`llmassist-admin --db DB user add NAME --role admin`"});
  }
  ProviderConfigContext pc;
  pc.base_dir = config.base_dir;
  pc.logger = quiet;
  // Each provider alone, without retries: in a chain, a dead one would hide behind the next.
  const auto doc = detail::parse_json_text(config.providers_json);
  std::vector<nlohmann::json> singles;
  if (doc.is_object() && doc.contains("providers") && doc["providers"].is_array()) {
    for (auto item : doc["providers"]) {
      if (item.is_object() && !item.contains("retries")) item["retries"] = 0;
      singles.push_back({{"providers", nlohmann::json::array({item})}});
    }
  }
  if (singles.empty()) singles.push_back(nlohmann::json::object());  // the shipped base
  for (const auto& single : singles) {
    auto chain = make_chain_from_config(single.dump(), pc);
    if (!chain.ok()) {
      out.push_back({"providers", false, chain.status().message()});
      continue;
    }
    const std::string name = (*chain)->provider_stats().front().name;
    CompletionRequest ping;
    ping.messages = {{Role::kUser, "Reply with the single word OK."}};
    ping.max_tokens = 5;
    ping.timeout = provider_timeout;
    auto answer = complete_sync(**chain, ping);
    if (answer.ok()) {
      out.push_back({"provider " + name, true,
                     fmt::format("answered in {} ms{}", answer->latency.count(),
                                 answer->model.empty() ? "" : " (" + answer->model + ")")});
    } else if (answer.status().reason() == "no_answer") {
      out.push_back({"provider " + name, true, "loaded (it had no answer to the test question)"});
    } else {
      const auto stats = (*chain)->provider_stats();
      out.push_back({"provider " + name, false,
                     stats.front().last_error.empty() ? answer.status().message()
                                                      : stats.front().last_error});
    }
  }
  if (config.telegram.token.empty()) {
    out.push_back({"telegram token", true,
                   "none set (BOT_TOKEN or telegram.token): the bot runs on the console"});
  } else {
    auto options = detail::telegram_options(config.telegram, quiet);
    if (!options.ok()) {
      out.push_back({"telegram token", false, options.status().message()});
    } else {
      auto me = telegram_get_me(*options);
      out.push_back({"telegram token", me.ok(),
                     me.ok() ? fmt::format("the token belongs to @{}", me->username)
                             : me.status().message()});
    }
  }
  return out;
}

}  // namespace llmassist
