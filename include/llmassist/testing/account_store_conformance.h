// The AccountStore conformance suite: what every account store must do, checked through the
// public interface only, so that a user's own store runs the same checks as the shipped ones.
//
//   auto results = llmassist::testing::run_account_store_conformance(
//       [](std::shared_ptr<llmassist::Clock> clock) { return open_my_account_store(clock); });
//   for (const auto& r : results) if (!r.passed) report(r.name, r.message);
//
// The factory makes a new, empty store for each check, reading its time from `clock` (the checks
// move that clock to let tokens' use records and sessions run out; no check sleeps). A store that
// hashes passwords should be made with cheap limits: the checks sign in many times.
//
// The checks: accounts made and signed in to, with one message for every wrong sign-in; taken
// names; invalid names, passwords, roles and labels; unknown accounts and tokens; roles and the
// listing by name; a new password ending sessions; disabled and deleted accounts, whose tokens
// and sessions stop working; the token round trip, its use recorded at most once a minute;
// revoked tokens; sessions that expire; ending one session. What a store keeps of a secret (only
// its digest) needs raw access to its tables: each store's own tests check that.
//
// Thread-safety: run one check at a time per factory unless its stores are independent.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmassist/account_store.h"
#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// Makes a new, empty account store that reads its time from `clock`.
using AccountStoreFactory =
    std::function<Result<std::unique_ptr<AccountStore>>(std::shared_ptr<Clock> clock)>;

namespace account_checks {

using namespace std::chrono_literals;

struct Harness {
  AccountStore& store;
  SteppedClock& clock;
};

inline constexpr std::string_view kPassword = "correct horse battery";

// An account `name` with the password kPassword.
inline std::optional<Account> add(CheckContext& t, Harness& h, const std::string& name,
                                  AccountRole role = AccountRole::kOperator) {
  auto a = h.store.create_account(name, kPassword, role);
  if (!t.expect_ok(a.status(), "create_account " + name)) return std::nullopt;
  return *a;
}

// A token and a session (an hour long) of an account.
struct Credentials {
  NewApiToken token;
  WebSession session;
};
inline std::optional<Credentials> credentials(CheckContext& t, Harness& h,
                                              const std::string& name) {
  auto token = h.store.create_token(name, "");
  auto session = h.store.create_session(name, 1h);
  if (!t.expect_ok(token.status(), "create_token for " + name) ||
      !t.expect_ok(session.status(), "create_session for " + name)) {
    return std::nullopt;
  }
  return Credentials{*token, *session};
}

inline void expect_unauthenticated(CheckContext& t, const Status& s, std::string_view what) {
  t.expect_code(s, StatusCode::kUnauthenticated, what);
}

// The token of `account` listed first, if any.
inline std::optional<ApiToken> first_token(CheckContext& t, Harness& h, std::string_view account) {
  auto tokens = h.store.list_tokens(account);
  if (!t.expect_ok(tokens.status(), "list_tokens")) return std::nullopt;
  if (!t.expect(!tokens->empty(), "list_tokens listed no token")) return std::nullopt;
  return tokens->front();
}

// ---- the checks ---------------------------------------------------------------------------

inline void create_and_verify(CheckContext& t, Harness& h) {
  auto a = add(t, h, "alice", AccountRole::kAdmin);
  if (!a) return;
  t.expect(a->id > 0, "an account gets a positive id");
  t.expect(a->name == "alice", "create_account: the name is '" + a->name + "'");
  t.expect(a->role == AccountRole::kAdmin, "create_account: the role is not admin");
  t.expect(!a->disabled, "create_account: a new account is disabled");
  t.expect(a->created_at == h.clock.now(), "create_account: created_at is not the clock's now");
  t.expect(!a->last_sign_in.has_value(), "create_account: a new account has a last_sign_in");

  h.clock.advance(5s);
  auto ok = h.store.verify_password("alice", kPassword);
  if (t.expect_ok(ok.status(), "verify_password with the right password")) {
    t.expect(ok->id == a->id, "verify_password answered another account");
    t.expect(ok->last_sign_in == h.clock.now(), "verify_password: last_sign_in is not now");
  }
  auto read = h.store.get_account("alice");
  if (t.expect_ok(read.status(), "get_account")) {
    t.expect(read->last_sign_in == h.clock.now(), "the sign-in was not recorded");
  }

  auto wrong = h.store.verify_password("alice", "not the password");
  auto unknown = h.store.verify_password("mallory", kPassword);
  auto short_one = h.store.verify_password("alice", "short");
  expect_unauthenticated(t, wrong.status(), "a wrong password");
  expect_unauthenticated(t, unknown.status(), "an unknown name");
  expect_unauthenticated(t, short_one.status(), "a password too short to be anyone's");
  t.expect(wrong.status().message() == "wrong name or password",
           "a wrong password's message: '" + wrong.status().message() + "'");
  t.expect(
      unknown.status().message() == wrong.status().message(),
      "an unknown name is told apart from a wrong password: '" + unknown.status().message() + "'");
  t.expect(
      short_one.status().message() == wrong.status().message(),
      "a short password is told apart from a wrong one: '" + short_one.status().message() + "'");
}

inline void taken_name(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice")) return;
  auto again = h.store.create_account("alice", "another password", AccountRole::kViewer);
  t.expect_code(again.status(), StatusCode::kAlreadyExists, "create_account of a taken name");
  auto list = h.store.list_accounts();
  t.expect(list.ok() && list->size() == 1, "a refused account was listed");
}

inline void invalid_input(CheckContext& t, Harness& h) {
  const auto refused = [&](const Status& s, std::string_view what) {
    t.expect_code(s, StatusCode::kInvalidArgument, what);
  };
  refused(h.store.create_account("", kPassword, AccountRole::kViewer).status(), "an empty name");
  refused(h.store.create_account(" alice", kPassword, AccountRole::kViewer).status(),
          "a name starting with a space");
  refused(h.store.create_account("al\x1b[2Jice", kPassword, AccountRole::kViewer).status(),
          "a name with a control character");
  refused(h.store.create_account(std::string(65, 'a'), kPassword, AccountRole::kViewer).status(),
          "a name of 65 bytes");
  refused(h.store.create_account("al\xffice", kPassword, AccountRole::kViewer).status(),
          "a name that is not UTF-8");
  auto short_password = h.store.create_account("alice", "123456789", AccountRole::kViewer);
  refused(short_password.status(), "a password of 9 bytes");
  t.expect(short_password.status().message().find("10 to 1024 bytes") != std::string::npos,
           "a short password's message does not say what is allowed: '" +
               short_password.status().message() + "'");
  refused(h.store.create_account("alice", std::string(1025, 'x'), AccountRole::kViewer).status(),
          "a password of 1025 bytes");
  refused(h.store.create_account("alice", kPassword, static_cast<AccountRole>(7)).status(),
          "an unknown role");
  t.expect_ok(
      h.store.create_account("alice", std::string(1024, 'x'), AccountRole::kViewer).status(),
      "a password of 1024 bytes");
  t.expect_ok(h.store.verify_password("alice", std::string(1024, 'x')).status(),
              "signing in with a password of 1024 bytes");

  refused(h.store.create_token("alice", std::string(201, 'l')).status(), "a label of 201 bytes");
  refused(h.store.create_token("alice", "line\nbreak").status(), "a label with a line break");
  t.expect_ok(h.store.create_token("alice", std::string(200, 'l')).status(),
              "a label of 200 bytes");
  refused(h.store.set_password("alice", "short"), "set_password with a short password");
  refused(h.store.set_role("alice", static_cast<AccountRole>(7)), "set_role of an unknown role");
  refused(h.store.create_session("alice", 0s).status(), "a session of no lifetime");
  refused(h.store.create_session("alice", std::chrono::hours(24 * 367)).status(),
          "a session of 367 days");
  auto list = h.store.list_accounts();
  t.expect(list.ok() && list->size() == 1, "a refused account was listed");
}

inline void unknown_accounts(CheckContext& t, Harness& h) {
  const auto missing = [&](const Status& s, std::string_view what) {
    t.expect_code(s, StatusCode::kNotFound, what);
  };
  missing(h.store.get_account("nobody").status(), "get_account");
  missing(h.store.set_role("nobody", AccountRole::kAdmin), "set_role");
  missing(h.store.set_password("nobody", kPassword), "set_password");
  missing(h.store.set_disabled("nobody", true), "set_disabled");
  missing(h.store.delete_account("nobody"), "delete_account");
  missing(h.store.create_token("nobody", "").status(), "create_token");
  missing(h.store.list_tokens("nobody").status(), "list_tokens");
  missing(h.store.revoke_token(42), "revoke_token of an unknown id");
  missing(h.store.create_session("nobody", 1h).status(), "create_session");
}

inline void roles_and_listing(CheckContext& t, Harness& h) {
  if (!add(t, h, "zoe", AccountRole::kViewer) || !add(t, h, "adam", AccountRole::kAdmin)) return;
  t.expect_ok(h.store.set_role("zoe", AccountRole::kOperator), "set_role");
  auto zoe = h.store.get_account("zoe");
  t.expect(zoe.ok() && zoe->role == AccountRole::kOperator, "set_role did not change the role");
  auto list = h.store.list_accounts();
  if (!t.expect_ok(list.status(), "list_accounts")) return;
  if (!t.expect(list->size() == 2,
                "list_accounts: " + std::to_string(list->size()) + " accounts, expected 2")) {
    return;
  }
  t.expect((*list)[0].name == "adam" && (*list)[1].name == "zoe",
           "list_accounts is not in the order of the names");
  t.expect((*list)[1].role == AccountRole::kOperator, "list_accounts: zoe's role");
  t.expect((*list)[0].role == AccountRole::kAdmin, "list_accounts: adam's role");
}

inline void new_password_ends_sessions(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice")) return;
  auto session = h.store.create_session("alice", 1h);
  if (!t.expect_ok(session.status(), "create_session")) return;
  if (!t.expect_ok(h.store.set_password("alice", "a brand new password"), "set_password")) return;
  expect_unauthenticated(t, h.store.verify_password("alice", kPassword).status(),
                         "the old password after set_password");
  t.expect_ok(h.store.verify_password("alice", "a brand new password").status(),
              "the new password");
  expect_unauthenticated(t, h.store.find_session(session->secret).status(),
                         "a session from before set_password");
}

inline void disabled_accounts(CheckContext& t, Harness& h) {
  if (!add(t, h, "bob")) return;
  auto made = credentials(t, h, "bob");
  if (!made) return;
  if (!t.expect_ok(h.store.set_disabled("bob", true), "set_disabled(true)")) return;
  auto bob = h.store.get_account("bob");
  t.expect(bob.ok() && bob->disabled, "get_account does not say disabled");

  auto signin = h.store.verify_password("bob", kPassword);
  expect_unauthenticated(t, signin.status(), "signing in to a disabled account");
  t.expect(signin.status().message() == "wrong name or password",
           "a disabled account is told apart from a wrong password: '" + signin.status().message() +
               "'");
  expect_unauthenticated(t, h.store.authenticate_token(made->token.secret).status(),
                         "a disabled account's token");
  expect_unauthenticated(t, h.store.find_session(made->session.secret).status(),
                         "a disabled account's session");
  t.expect_code(h.store.create_token("bob", "").status(), StatusCode::kFailedPrecondition,
                "create_token for a disabled account");
  t.expect_code(h.store.create_session("bob", 1h).status(), StatusCode::kFailedPrecondition,
                "create_session for a disabled account");

  // Enabled again: the token works again; the browser must sign in again.
  if (!t.expect_ok(h.store.set_disabled("bob", false), "set_disabled(false)")) return;
  t.expect_ok(h.store.authenticate_token(made->token.secret).status(),
              "the token once the account is enabled again");
  t.expect_ok(h.store.verify_password("bob", kPassword).status(),
              "signing in once the account is enabled again");
  expect_unauthenticated(t, h.store.find_session(made->session.secret).status(),
                         "a session ended by disabling, once enabled again");
}

inline void deleting_revokes(CheckContext& t, Harness& h) {
  if (!add(t, h, "bob") || !add(t, h, "carol")) return;
  auto made = credentials(t, h, "bob");
  auto other = h.store.create_token("carol", "");
  if (!made || !t.expect_ok(other.status(), "create_token for carol")) return;
  if (!t.expect_ok(h.store.delete_account("bob"), "delete_account")) return;
  t.expect_code(h.store.get_account("bob").status(), StatusCode::kNotFound,
                "get_account of a deleted account");
  expect_unauthenticated(t, h.store.authenticate_token(made->token.secret).status(),
                         "a deleted account's token");
  expect_unauthenticated(t, h.store.find_session(made->session.secret).status(),
                         "a deleted account's session");
  auto all = h.store.list_tokens("");
  t.expect(all.ok() && all->size() == 1, "list_tokens still lists a deleted account's token");
  t.expect_ok(h.store.authenticate_token(other->secret).status(), "another account's token");

  // A new account of the same name inherits nothing.
  if (!add(t, h, "bob")) return;
  expect_unauthenticated(t, h.store.authenticate_token(made->token.secret).status(),
                         "the old token of a name made again");
  auto tokens = h.store.list_tokens("bob");
  t.expect(tokens.ok() && tokens->empty(), "a name made again inherited its tokens");
}

inline void token_round_trip(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice", AccountRole::kAdmin)) return;
  auto made = h.store.create_token("alice", "grafana");
  if (!t.expect_ok(made.status(), "create_token")) return;
  t.expect(made->secret.starts_with("lla_") && made->secret.size() == 4 + 43,
           "a token's secret is not lla_ and 43 characters");
  t.expect(made->secret.find_first_not_of(
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", 4) ==
               std::string::npos,
           "a token's secret is not base64url");
  t.expect(made->token.id > 0, "a token gets a positive id");
  t.expect(made->token.account == "alice", "create_token: the account");
  t.expect(made->token.label == "grafana", "create_token: the label");
  t.expect(made->token.created_at == h.clock.now(), "create_token: created_at");
  t.expect(!made->token.last_used.has_value(), "a new token has a last_used");
  t.expect(!made->token.revoked_at.has_value(), "a new token is revoked");

  auto who = h.store.authenticate_token(made->secret);
  if (t.expect_ok(who.status(), "authenticate_token")) {
    t.expect(who->name == "alice", "authenticate_token answered another account");
    t.expect(who->role == AccountRole::kAdmin, "authenticate_token: the account's role");
  }
  const Timestamp first_use = h.clock.now();
  auto listed = first_token(t, h, "alice");
  if (listed) {
    t.expect(listed->last_used == first_use, "the first use was not recorded");
    t.expect(listed->id == made->token.id && listed->label == "grafana",
             "list_tokens: the token's id or label");
  }

  h.clock.advance(30s);
  t.expect_ok(h.store.authenticate_token(made->secret).status(), "authenticate_token again");
  listed = first_token(t, h, "alice");
  t.expect(listed && listed->last_used == first_use,
           "a use 30 s after the last recorded one was recorded");
  h.clock.advance(31s);
  t.expect_ok(h.store.authenticate_token(made->secret).status(), "authenticate_token again");
  listed = first_token(t, h, "alice");
  t.expect(listed && listed->last_used == h.clock.now(),
           "a use 61 s after the last recorded one was not recorded");

  std::string altered = made->secret;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  expect_unauthenticated(t, h.store.authenticate_token(altered).status(), "an altered secret");
  expect_unauthenticated(t, h.store.authenticate_token("").status(), "an empty secret");
  expect_unauthenticated(t, h.store.authenticate_token(made->secret.substr(4)).status(),
                         "a secret without its prefix");
}

inline void revoked_tokens(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice")) return;
  auto made = h.store.create_token("alice", "");
  if (!t.expect_ok(made.status(), "create_token")) return;
  h.clock.advance(1min);
  if (!t.expect_ok(h.store.revoke_token(made->token.id), "revoke_token")) return;
  const Timestamp revoked = h.clock.now();
  h.clock.advance(1min);
  t.expect_ok(h.store.revoke_token(made->token.id), "revoke_token of a revoked token");
  auto who = h.store.authenticate_token(made->secret);
  expect_unauthenticated(t, who.status(), "a revoked token");
  t.expect(who.status().message().find(made->secret) == std::string::npos,
           "the refusal shows the secret");
  auto tokens = h.store.list_tokens("");
  if (!t.expect_ok(tokens.status(), "list_tokens")) return;
  if (!t.expect(tokens->size() == 1, "list_tokens does not list the revoked token")) return;
  t.expect(tokens->at(0).revoked_at == revoked,
           "revoked_at is not the time of the first revocation");
}

inline void sessions_expire(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice", AccountRole::kViewer)) return;
  auto made = h.store.create_session("alice", 1h);
  if (!t.expect_ok(made.status(), "create_session")) return;
  t.expect(made->secret.size() == 43, "a session's secret is not 43 characters");
  t.expect(made->csrf_token.size() == 43, "a session's CSRF token is not 43 characters");
  t.expect(made->secret != made->csrf_token, "the CSRF token is the session's secret");
  t.expect(made->expires_at == h.clock.now() + 1h, "expires_at is not now + the lifetime");
  t.expect(made->account.name == "alice", "create_session: the account");

  h.clock.advance(59min);
  auto found = h.store.find_session(made->secret);
  if (t.expect_ok(found.status(), "find_session before it expires")) {
    t.expect(found->secret.empty(), "find_session gave back the secret");
    t.expect(found->csrf_token == made->csrf_token, "find_session: the CSRF token");
    t.expect(found->account.name == "alice", "find_session: the account");
    t.expect(found->account.role == AccountRole::kViewer, "find_session: the account's role");
    t.expect(found->expires_at == made->expires_at, "find_session: expires_at");
  }
  h.clock.advance(1min);
  expect_unauthenticated(t, h.store.find_session(made->secret).status(), "a session at its expiry");
  expect_unauthenticated(t, h.store.find_session("").status(), "an empty secret");
  expect_unauthenticated(t, h.store.find_session(std::string(43, 'A')).status(),
                         "an unknown secret");
}

inline void ending_one_session(CheckContext& t, Harness& h) {
  if (!add(t, h, "alice")) return;
  auto one = h.store.create_session("alice", 1h);
  auto two = h.store.create_session("alice", 1h);
  if (!t.expect_ok(one.status(), "create_session") ||
      !t.expect_ok(two.status(), "create_session")) {
    return;
  }
  t.expect(one->secret != two->secret, "two sessions have one secret");
  t.expect_ok(h.store.end_session(one->secret), "end_session");
  t.expect_ok(h.store.end_session(one->secret), "end_session of an ended session");
  expect_unauthenticated(t, h.store.find_session(one->secret).status(), "an ended session");
  t.expect_ok(h.store.find_session(two->secret).status(), "the other browser's session");
}

inline const std::vector<NamedCheck<Harness>>& all() {
  static const std::vector<NamedCheck<Harness>> checks = {
      {"create, verify, and one message for every wrong sign-in", &create_and_verify},
      {"a taken name is refused", &taken_name},
      {"invalid names, passwords, roles, labels and lifetimes are refused", &invalid_input},
      {"unknown accounts and tokens are not found", &unknown_accounts},
      {"roles change and accounts list by name", &roles_and_listing},
      {"a new password works, the old one no longer, and sessions end",
       &new_password_ends_sessions},
      {"a disabled account cannot sign in, and its tokens and sessions fail", &disabled_accounts},
      {"deleting an account revokes its tokens and ends its sessions", &deleting_revokes},
      {"an API token round trip, its use recorded at most once a minute", &token_round_trip},
      {"a revoked token is refused and listed as revoked", &revoked_tokens},
      {"sessions expire", &sessions_expire},
      {"ending a session signs that browser out only", &ending_one_session},
  };
  return checks;
}

}  // namespace account_checks

// The names of the checks, in the order run_account_store_conformance() runs them.
inline std::vector<std::string> account_store_check_names() {
  return check_names(account_checks::all());
}

// Runs the check called `name` against a new store from `factory`.
inline CheckResult run_account_store_check(std::string_view name,
                                           const AccountStoreFactory& factory) {
  return run_clocked_store_check(account_checks::all(), name, factory);
}

// Runs every check, each against a new store; one result per check, in order.
inline std::vector<CheckResult> run_account_store_conformance(const AccountStoreFactory& factory) {
  return run_every_check(account_checks::all(), [&](std::string_view name) {
    return run_account_store_check(name, factory);
  });
}

}  // namespace llmassist::testing
