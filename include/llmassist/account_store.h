// AccountStore: the people and scripts allowed into the admin server — accounts with a role and a
// password, API tokens for scripts, and the web page's signed-in sessions.
//
// Contract:
// - Passwords are stored only as argon2id hashes (libsodium's crypto_pwhash_str); API tokens and
//   session ids only as SHA-256 digests. A secret is returned once, when it is made, and never
//   again: nothing that reads the store can recover one.
// - verify_password() takes about the same time for an unknown account as for a known one with a
//   wrong password, and answers both with the same kUnauthenticated message, so that a caller
//   cannot tell which names exist.
// - A disabled or deleted account's tokens and sessions stop working at once.
// - Errors: kInvalidArgument for a bad name, role or password (the message says what is
//   allowed), kAlreadyExists for a taken name, kNotFound for an unknown account or token,
//   kUnauthenticated for a wrong password or an unknown, revoked or expired secret, kUnavailable
//   when the database is busy. Never throws.
//
// Thread-safety: every method may be called from many threads at once, and several processes may
// share one database (the bot serving the page, llmassist-admin adding a user).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// What an account may do. Each role includes the ones before it.
enum class AccountRole : std::uint8_t {
  kViewer,    // reads everything but accounts and tokens of others
  kOperator,  // also moderates drafts, answers handoff chats, hands chats over and back
  kAdmin,     // also manages accounts, tokens and settings
};

// "viewer", "operator", "admin".
[[nodiscard]] LLMASSIST_API std::string_view to_string(AccountRole role) noexcept;
[[nodiscard]] LLMASSIST_API std::optional<AccountRole> parse_account_role(
    std::string_view name) noexcept;

struct LLMASSIST_API Account {
  std::int64_t id = 0;
  std::string name;  // as check_operator_name() accepts; decisions are made by operator:<name>
  AccountRole role = AccountRole::kViewer;
  bool disabled = false;
  Timestamp created_at{};
  std::optional<Timestamp> last_sign_in;
};

struct LLMASSIST_API ApiToken {
  std::int64_t id = 0;
  std::string account;  // the account the token acts as
  std::string label;    // what it is for ("grafana", "nightly export")
  Timestamp created_at{};
  std::optional<Timestamp> last_used;
  std::optional<Timestamp> revoked_at;
};

// A token as it is made: `secret` ("lla_" and 43 base64url characters) is shown this once.
struct LLMASSIST_API NewApiToken {
  ApiToken token;
  std::string secret;
};

// A signed-in browser. The cookie carries `secret`; every change the page asks for carries
// `csrf_token`.
struct LLMASSIST_API WebSession {
  std::string secret;      // only in what create_session() returns; empty from find_session()
  std::string csrf_token;  // 43 base64url characters
  Account account;
  Timestamp expires_at{};
};

class LLMASSIST_API AccountStore {
 public:
  AccountStore() = default;
  virtual ~AccountStore() = default;
  AccountStore(const AccountStore&) = delete;
  AccountStore& operator=(const AccountStore&) = delete;

  // --- accounts -------------------------------------------------------------------------------

  // `password`: 10 to 1024 bytes.
  virtual Result<Account> create_account(std::string_view name, std::string_view password,
                                         AccountRole role) = 0;
  virtual Result<Account> get_account(std::string_view name) = 0;
  virtual Result<std::vector<Account>> list_accounts() = 0;
  virtual Status set_password(std::string_view name, std::string_view password) = 0;
  virtual Status set_role(std::string_view name, AccountRole role) = 0;
  // A disabled account cannot sign in; its tokens and sessions stop working.
  virtual Status set_disabled(std::string_view name, bool disabled) = 0;
  // Also revokes its tokens and ends its sessions. The audit log keeps its name.
  virtual Status delete_account(std::string_view name) = 0;
  // The account when `password` is its password and it is not disabled; records the sign-in.
  virtual Result<Account> verify_password(std::string_view name, std::string_view password) = 0;

  // --- API tokens -----------------------------------------------------------------------------

  virtual Result<NewApiToken> create_token(std::string_view account, std::string_view label) = 0;
  // An account's tokens (all accounts' when `account` is empty), revoked ones included.
  virtual Result<std::vector<ApiToken>> list_tokens(std::string_view account) = 0;
  virtual Status revoke_token(std::int64_t id) = 0;
  // The account behind a token's secret; records its use (at most once a minute).
  virtual Result<Account> authenticate_token(std::string_view secret) = 0;

  // --- web sessions ---------------------------------------------------------------------------

  virtual Result<WebSession> create_session(std::string_view account,
                                            std::chrono::seconds lifetime) = 0;
  // The live session behind a cookie's secret, with its account as it is now.
  virtual Result<WebSession> find_session(std::string_view secret) = 0;
  virtual Status end_session(std::string_view secret) = 0;
};

}  // namespace llmassist
