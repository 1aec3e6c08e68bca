// The account stores' shared rules, on libsodium: its CSPRNG for secrets, crypto_hash_sha256 for
// their digests, crypto_pwhash_str (argon2id) for passwords.
#include "admin/account_rules.h"

#include <fmt/format.h>
#include <sodium.h>

#include <array>

#include "core/utf8.h"
#include "llmassist/core/store_moderation_queue.h"

namespace llmassist::detail {
namespace {

constexpr std::size_t kSecretBytes = 32;
constexpr auto kBase64Variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
static_assert(kSecretChars == sodium_base64_ENCODED_LEN(kSecretBytes, kBase64Variant) - 1);

}  // namespace

Status check_account_name(std::string_view name) {
  LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
  if (operator_actor(name) != "operator:" + std::string(name)) {
    return invalid_argument(fmt::format(
        "account name \"{}\" would read as a Telegram operator's id; choose another", name));
  }
  return Status();
}

Status check_password(std::string_view password) {
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return invalid_argument(fmt::format("a password must be {} to {} bytes long", kMinPasswordBytes,
                                        kMaxPasswordBytes));
  }
  return Status();
}

Status check_role(AccountRole role) {
  if (!parse_account_role(to_string(role))) {
    return invalid_argument("the role must be viewer, operator or admin");
  }
  return Status();
}

Status check_label(std::string_view label) {
  if (label.size() > kMaxLabelBytes) {
    return invalid_argument(fmt::format("a token's label is {} bytes, more than the {} allowed",
                                        label.size(), kMaxLabelBytes));
  }
  return check_printable(label, "a token's label");
}

Status check_session_lifetime(std::chrono::seconds lifetime) {
  if (lifetime <= std::chrono::seconds(0) || lifetime > kMaxSessionLifetime) {
    return invalid_argument("a session's lifetime must be between 1 second and 366 days");
  }
  return Status();
}

bool token_shaped(std::string_view secret) noexcept {
  return secret.starts_with(kTokenPrefix) && secret.size() == kTokenPrefix.size() + kSecretChars;
}

bool session_shaped(std::string_view secret) noexcept { return secret.size() == kSecretChars; }

bool token_use_due(std::optional<std::int64_t> last_used_ms, std::int64_t now_ms) noexcept {
  return !last_used_ms || now_ms - *last_used_ms >= kLastUsedResolutionMs;
}

Status no_account(std::string_view name) {
  return not_found(fmt::format("no account named {}", name));
}
Status name_taken(std::string_view name) {
  return already_exists(fmt::format("an account named {} exists already", name));
}
Status account_disabled(std::string_view name) {
  return failed_precondition(fmt::format("account {} is disabled", name));
}
Status no_token(std::int64_t id) { return not_found(fmt::format("no API token {}", id)); }
Status wrong_credentials() { return unauthenticated(std::string(kWrongCredentials)); }
Status bad_token() { return unauthenticated(std::string(kBadToken)); }
Status token_account_disabled() { return unauthenticated("the API token's account is disabled"); }
Status bad_session() { return unauthenticated(std::string(kBadSession)); }

Status init_crypto() {
  if (sodium_init() < 0) return internal_error("libsodium cannot be initialised");
  return Status();
}

std::string random_secret() {
  std::array<unsigned char, kSecretBytes> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  std::array<char, kSecretChars + 1> text{};
  sodium_bin2base64(text.data(), text.size(), bytes.data(), bytes.size(), kBase64Variant);
  std::string out(text.data(), kSecretChars);
  sodium_memzero(bytes.data(), bytes.size());
  sodium_memzero(text.data(), text.size());
  return out;
}

std::string new_token_secret() { return std::string(kTokenPrefix) + random_secret(); }

std::string digest_of(std::string_view secret) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size());
  std::array<char, crypto_hash_sha256_BYTES * 2 + 1> hex{};
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  return std::string(hex.data(), hex.size() - 1);
}

Result<PasswordHasher> PasswordHasher::make(PasswordLimits limits) {
  if (limits.ops < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      limits.ops > crypto_pwhash_argon2id_OPSLIMIT_MAX) {
    return invalid_argument(fmt::format("password_ops must be between {} and {}",
                                        crypto_pwhash_argon2id_OPSLIMIT_MIN,
                                        crypto_pwhash_argon2id_OPSLIMIT_MAX));
  }
  if (limits.memory < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      limits.memory > crypto_pwhash_argon2id_MEMLIMIT_MAX) {
    return invalid_argument(fmt::format("password_memory must be between {} and {} bytes",
                                        crypto_pwhash_argon2id_MEMLIMIT_MIN,
                                        crypto_pwhash_argon2id_MEMLIMIT_MAX));
  }
  LLMASSIST_RETURN_IF_ERROR(init_crypto());
  PasswordHasher hasher(limits, "");
  std::string dummy_password = random_secret();
  auto dummy_hash = hasher.hash(dummy_password);
  sodium_memzero(dummy_password.data(), dummy_password.size());
  if (!dummy_hash.ok()) return dummy_hash.status();
  hasher.dummy_hash_ = std::move(dummy_hash).value();
  return hasher;
}

Result<std::string> PasswordHasher::hash(std::string_view password) const {
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str_alg(out.data(), password.data(), password.size(), limits_.ops,
                            limits_.memory, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    // libsodium fails here only when it cannot allocate the memory.
    return resource_exhausted(
        fmt::format("not enough memory to hash a password ({} bytes)", limits_.memory));
  }
  return std::string(out.data());
}

Result<std::optional<std::string>> PasswordHasher::check_sign_in(const std::string* stored_hash,
                                                                 bool disabled,
                                                                 std::string_view password) const {
  const std::string& hash = stored_hash != nullptr ? *stored_hash : dummy_hash_;
  const bool match = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
  if (stored_hash == nullptr || !match || disabled) return wrong_credentials();
  if (crypto_pwhash_str_needs_rehash(hash.c_str(), limits_.ops, limits_.memory) == 0) {
    return std::optional<std::string>();
  }
  auto fresh = this->hash(password);
  if (!fresh.ok()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(fresh).value());
}

Result<std::string> new_account_hash(const PasswordHasher& hasher, std::string_view name,
                                     std::string_view password, AccountRole role) {
  LLMASSIST_RETURN_IF_ERROR(check_account_name(name));
  LLMASSIST_RETURN_IF_ERROR(check_password(password));
  LLMASSIST_RETURN_IF_ERROR(check_role(role));
  return hasher.hash(password);
}

Result<Account> sign_in(
    const PasswordHasher& hasher, std::string_view password, Timestamp now, Logger& logger,
    const std::function<Result<std::optional<StoredPassword>>()>& find,
    const std::function<Status(std::int64_t, Timestamp, const std::optional<std::string>&,
                               const std::string&)>& record) {
  // A password no account can have is refused before the account is read, alike for every
  // name: nothing is learnt about which names exist, and a megabyte "password" costs nothing.
  if (!check_password(password).ok()) return wrong_credentials();
  LLMASSIST_ASSIGN_OR_RETURN(std::optional<StoredPassword> found, find());
  LLMASSIST_ASSIGN_OR_RETURN(std::optional<std::string> rehashed,
                             hasher.check_sign_in(found ? &found->hash : nullptr,
                                                  found && found->account.disabled, password));
  Account account = std::move(found->account);
  LLMASSIST_RETURN_IF_ERROR(record(account.id, now, rehashed, found->hash));
  if (rehashed) {
    logger.log(LogLevel::kInfo, kAccountsLog,
               fmt::format("rehashed the password of account \"{}\" with the current limits",
                           account.name));
  }
  account.last_sign_in = now;
  return account;
}

NewApiToken new_api_token(std::string_view account, std::string_view label, Timestamp now) {
  NewApiToken made;
  made.secret = new_token_secret();
  made.token.account = std::string(account);
  made.token.label = std::string(label);
  made.token.created_at = now;
  return made;
}

Result<Account> authenticate_by_token(
    std::string_view secret, std::int64_t now_ms, Logger& logger,
    const std::function<Result<StoredToken>(const std::string&)>& find,
    const std::function<Status(std::int64_t, std::int64_t)>& record_use) {
  if (!token_shaped(secret)) return bad_token();
  auto found = find(digest_of(secret));
  if (!found.ok()) {
    if (found.status().code() == StatusCode::kNotFound) return bad_token();
    return found.status();
  }
  if (found->revoked) return bad_token();
  if (found->account.disabled) return token_account_disabled();
  if (token_use_due(found->last_used_ms, now_ms)) {
    if (Status recorded = record_use(found->id, now_ms); !recorded.ok()) {
      logger.log(LogLevel::kWarning, kAccountsLog,
                 fmt::format("cannot record the use of API token {}: {}", found->id,
                             recorded.to_string()));
    }
  }
  return std::move(found->account);
}

Result<WebSession> new_web_session(Timestamp now, std::chrono::seconds lifetime) {
  LLMASSIST_RETURN_IF_ERROR(check_session_lifetime(lifetime));
  WebSession session;
  session.secret = random_secret();
  session.csrf_token = random_secret();
  session.expires_at = now + lifetime;
  return session;
}

Result<WebSession> find_live_session(
    std::string_view secret, std::int64_t now_ms, Logger& logger,
    const std::function<Result<WebSession>(const std::string&)>& find,
    const std::function<Status()>& end) {
  if (!session_shaped(secret)) return bad_session();
  auto found = find(digest_of(secret));
  if (!found.ok()) {
    if (found.status().code() == StatusCode::kNotFound) return bad_session();
    return found.status();
  }
  const std::int64_t expires_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(found->expires_at.time_since_epoch())
          .count();
  if (expires_ms <= now_ms) {
    if (Status s = end(); !s.ok()) {
      logger.log(LogLevel::kWarning, kAccountsLog,
                 "cannot delete an expired session: " + s.to_string());
    }
    return bad_session();
  }
  if (found->account.disabled) return bad_session();
  return found;
}

}  // namespace llmassist::detail
