// The write side's application service: loads aggregate states from the event store, asks the
// pure domain to decide, and appends the resulting events atomically. It knows nothing of HTTP;
// the HTTP layer (http_api.h) and shopctl both call it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shop/domain/aggregates.h"
#include "shop/events/types.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"

namespace shop::command {

// A domain rule refused the command (code as in domain::DomainError). Mapped to HTTP in one
// place: errors.cpp.
struct CommandRejected : std::runtime_error {
  explicit CommandRejected(domain::DomainError e)
      : std::runtime_error(e.message), error(std::move(e)) {}
  domain::DomainError error;
};

// Who sent the command and why: becomes the events' metadata.
struct Context {
  std::optional<std::string> actor;  // user id
  std::string correlation_id;        // from the request, or new
  std::string causation_id;          // the command's own id
  static Context make(std::optional<std::string> actor,
                      std::optional<std::string> correlation = std::nullopt);
};

// The answer to every successful command.
struct Written {
  std::string id;                 // the aggregate the command was about
  std::int64_t version = 0;       // its stream version afterwards
  std::int64_t position = 0;      // global position of the last event written (or of the
                                  // aggregate's last event when nothing had to change)
};

// A pair of tokens of one session (refresh-token family).
struct Tokens {
  std::string access, refresh;
  long long expires_in = 0;  // seconds until the access token expires
  std::string session_id;
  std::int64_t position = 0;  // of the session event that issued the pair
};

struct OrderPlacedResult {
  std::string order_id, order_number, currency;
  std::int64_t total = 0, position = 0;
  bool replayed = false;  // answered from a stored idempotency key
};

struct PaymentStarted {
  std::string payment_id;
  std::int64_t amount = 0, position = 0;
  std::string currency;
};

struct PaymentSettled {
  std::string payment_id, status;  // initiated | captured | failed
  std::int64_t position = 0;
};

struct ServiceOptions {
  std::string currency = "USD";
  long long access_ttl_seconds = 900;
  long long refresh_ttl_seconds = 14 * 24 * 3600;
  int max_attempts = 25;  // per command, on concurrency conflicts
  // Told of every session this service revokes (id, refresh expiry as RFC 3339), after the
  // commit: the process's revocation list takes it at once, before the projector shows it.
  std::function<void(const std::string&, const std::string&)> on_revoked;
};

class CommandService {
 public:
  CommandService(infra::EventStore& store, const infra::JwtCodec& jwt, const Clock& clock,
                 ServiceOptions options);
  ~CommandService();

  // identity
  Written register_user(const std::string& email, const std::string& password,
                        const std::string& name, const std::vector<std::string>& roles,
                        const Context& ctx);
  // Seeding only (shopctl seed-demo --users): register_user with the argon2id hash of the
  // password already computed by the caller with infra::hash_password. Thousands of demo
  // customers who share one password then cost one deliberately slow hash instead of one each;
  // the decision, the e-mail claim, the credentials row and the UserRegistered event are those of
  // register_user, which calls it. The HTTP API never does: a password reaches it in clear.
  // Throws std::invalid_argument when `password_hash` is not an argon2id hash string.
  Written register_user_with_password_hash(const std::string& email,
                                           const std::string& password_hash,
                                           const std::string& name,
                                           const std::vector<std::string>& roles,
                                           const Context& ctx);
  // Signs in: starts a session (SessionStarted) and returns its first pair of tokens.
  Tokens login(const std::string& email, const std::string& password);
  // Starts a session of an existing user (registration signs in too).
  Tokens start_session(const std::string& user_id, const Context& ctx);
  // Spends a refresh token for a new pair (rotation). A spent refresh token of the session
  // presented again revokes the whole session (reuse_detected) and is refused with
  // refresh_token_reused; an invalid, expired or revoked one with invalid_token.
  Tokens refresh(const std::string& refresh_token, const Context& ctx);
  // Ends the session of a refresh token (any token of the family will do). Ending an ended
  // session changes nothing. invalid_token when the token is not a valid refresh token.
  Written logout(const std::string& refresh_token, const Context& ctx);
  // Ends every session of the user that has started before this call and has not expired.
  // `revoked` gets the number of sessions it ended.
  Written logout_all(const std::string& user_id, const Context& ctx,
                     std::int64_t* revoked = nullptr);
  std::optional<domain::UserState> find_user_by_email(const std::string& email);

  // account (the signed-in user's own)
  // Changes the user's name and mobile number (c.phone in E.164 form: domain/phone.h). A number
  // belongs to one account: it is claimed (unique_claims, scope "phone", the E.164 text, owner the
  // user id) in the same transaction as the event, and the old number's claim is released when it
  // changes or is removed. phone_taken when another account has the number; nothing changes (no
  // event) when nothing differs.
  Written change_profile(const std::string& user_id, const domain::ChangeProfile& c,
                         const Context& ctx);
  // Changes the user's password: wrong_password unless `current_password` is the current one (an
  // account without a password has none to give), weak_password when the new one breaks the
  // password rules. Stores the new hash with UserPasswordChanged and ends every other session of
  // the user that has started before this call and has not expired (SessionRevoked,
  // password_changed), all in one transaction; `keep_session_id` (the caller's session) stays.
  // `revoked` gets the number of sessions it ended. The position is that of the last event.
  Written change_password(const std::string& user_id, const std::string& keep_session_id,
                          const std::string& current_password, const std::string& new_password,
                          const Context& ctx, std::int64_t* revoked = nullptr);

  // accounts (admin)
  // Sets the roles of `user_id` to a new full set (customer, staff, admin; domain::SetRoles):
  // not_found for an unknown user, invalid_value for an empty set or an unknown role,
  // cannot_remove_own_admin when the admin `actor_id` would drop their own admin role. The same
  // set changes nothing. When a role is taken away, every session of the user that has started
  // before this call and has not expired ends in the same append (SessionRevoked,
  // roles_changed); later refreshes and sign-ins carry the new roles. `revoked` gets the number
  // of sessions ended. The position is that of the last event.
  Written set_roles(const std::string& user_id, const std::vector<std::string>& roles,
                    const std::string& actor_id, const Context& ctx,
                    std::int64_t* revoked = nullptr);

  // catalog (staff)
  Written create_category(const domain::CreateCategory& c, const Context& ctx);
  Written create_product(const domain::CreateProduct& c, const Context& ctx);
  // expected_version: If-Match; nullopt = any. absolute_stock: sets stock (as an adjustment).
  Written update_product(const std::string& id, const domain::UpdateProduct& c,
                         std::optional<std::int64_t> absolute_stock,
                         std::optional<std::int64_t> expected_version, const Context& ctx);
  Written adjust_stock(const std::string& id, std::int64_t delta, const Context& ctx,
                       std::int64_t* stock_after = nullptr);
  Written discontinue_product(const std::string& id, std::optional<std::int64_t> expected_version,
                              const Context& ctx);

  // cart (customer)
  Written add_cart_item(const std::string& user_id, const std::string& product_id,
                        std::int64_t quantity, const Context& ctx,
                        std::int64_t* line_quantity = nullptr);
  Written change_cart_item(const std::string& user_id, const std::string& product_id,
                           std::int64_t quantity, const Context& ctx);
  Written remove_cart_item(const std::string& user_id, const std::string& product_id,
                           const Context& ctx);

  // orders
  OrderPlacedResult place_order(const std::string& user_id,
                                const std::optional<std::string>& idempotency_key,
                                const Context& ctx);
  // `as_staff` may act on any order; a customer only on their own (else not_found).
  Written cancel_order(const std::string& order_id, const std::string& user_id, bool as_staff,
                       const std::string& reason, const Context& ctx);
  Written ship_order(const std::string& order_id, const domain::ShipOrder& c, const Context& ctx);
  Written deliver_order(const std::string& order_id, const Context& ctx);

  // payments
  PaymentStarted start_payment(const std::string& order_id, const std::string& user_id,
                               bool as_staff, const std::string& provider, const Context& ctx);
  PaymentSettled settle_payment(const std::string& payment_id, const domain::SettlePayment& c,
                                const Context& ctx);

  const ServiceOptions& options() const { return options_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServiceOptions options_;
};

}  // namespace shop::command
