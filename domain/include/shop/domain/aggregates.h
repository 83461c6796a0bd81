// The write model: one state per aggregate, folded from its stream (evolve), and pure decisions
// (decide) that turn a command and the current states into new events or a DomainError.
// Nothing here does I/O, reads a clock or draws random numbers: ids and times come in as inputs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shop/domain/result.h"

namespace shop::domain {

using events::Event;

// Quantities of one cart line or order line are bounded so totals can never overflow.
inline constexpr std::int64_t kMaxLineQuantity = 1000;

// ---------------------------------------------------------------------------------- user
struct UserState {
  bool exists = false;
  std::string id, email, name;
  std::optional<std::string> phone;  // E.164 (phone.h)
  std::vector<std::string> roles;
  bool has_role(std::string_view role) const;
};
UserState evolve(UserState s, const Event& e);
struct RegisterUser {
  std::string user_id, email, name;
  std::vector<std::string> roles;
};
Decision decide(const UserState& s, const RegisterUser& c);

// ------------------------------------------------------------------------------- session
// A session is one refresh-token family: started by a sign-in, carried on by rotation (each
// refresh token can be spent once, for the next pair), ended by a revocation.
struct SessionState {
  bool exists = false;
  bool revoked = false;
  std::string id, user_id, refresh_id;  // refresh_id: the current (unspent) refresh token's id
  std::string expires_at;               // of the current refresh token, RFC 3339 UTC
  std::string revoke_reason;
};
SessionState evolve(SessionState s, const Event& e);

struct StartSession {
  std::string session_id, user_id, refresh_id, expires_at;
};
Decision decide(const SessionState& s, const StartSession& c);

// A refresh token of the session (signature, type and expiry already checked) presented for a
// new pair. The current one is rotated. Any other token of the family has been spent: presenting
// it again means it was copied, so the whole family is revoked (SessionRevoked reuse_detected),
// and the caller must refuse the request after appending that. A revoked or unknown session, or a
// token of another user, is refused (invalid_token) with no event.
struct RotateRefreshToken {
  std::string user_id, presented_refresh_id, new_refresh_id, expires_at;
};
Decision decide(const SessionState& s, const RotateRefreshToken& c);
// Whether a decision on RotateRefreshToken revoked the family (the caller answers 401).
bool revokes_session(const Events& events);

// Ends the session (reason: logout, logout_all). Revoking a revoked session changes nothing; a
// session of another user is not found.
struct RevokeSession {
  std::string user_id, reason;
};
Decision decide(const SessionState& s, const RevokeSession& c);

// ------------------------------------------------------------- user: profile, password, roles
// The roles an account may have: customer (shops), staff (runs the catalogue, stock and
// shipping), admin (also manages accounts and roles).
inline constexpr std::string_view kRoles[] = {"customer", "staff", "admin"};

// A set of roles in its one written form: each role once, in the order of kRoles. nullopt when
// `roles` is empty or names anything else.
std::optional<std::vector<std::string>> role_set(const std::vector<std::string>& roles);

// The user changes their own profile. nullopt: unchanged. phone: a new mobile number, already in
// E.164 form (phone.h: normalize_phone); remove_phone: the account keeps no number. Emits
// UserProfileChanged with only what differs from the state, or nothing when nothing does.
struct ChangeProfile {
  std::optional<std::string> name, phone;
  bool remove_phone = false;
};
Decision decide(const UserState& s, const ChangeProfile& c);

// Sessions of one user that a decision may end, by session id: the caller passes those that have
// not expired (the domain has no clock). Revoked ones, and any of another user, are left alone.
using UserSessions = std::map<std::string, SessionState>;

// The user changed their password; the caller has checked the current one and the new one's
// strength (password_policy.h) and keeps the hash. Emits UserPasswordChanged and ends every
// other live session of the user (SessionRevoked, password_changed): the session the change was
// made in (keep_session_id) stays.
struct ChangePassword {
  std::string keep_session_id;
};
Decision decide(const UserState& s, const ChangePassword& c, const UserSessions& sessions);

// An admin (actor_id) sets the user's roles to a new full set (role_set). The same set changes
// nothing. An admin cannot take the admin role from themselves (cannot_remove_own_admin): the
// shop is never left without an admin by accident. When a role is taken away, every live session
// of the user ends in the same decision (SessionRevoked, roles_changed), so that no token
// carrying the old roles keeps working.
struct SetRoles {
  std::string actor_id;
  std::vector<std::string> roles;
};
Decision decide(const UserState& s, const SetRoles& c, const UserSessions& sessions);
// Whether going from `before` to `after` takes a role away.
bool removes_a_role(const std::vector<std::string>& before, const std::vector<std::string>& after);

// ------------------------------------------------------------------------------ category
struct CategoryState {
  bool exists = false;
  std::string id, name;
  std::optional<std::string> parent_id;
};
CategoryState evolve(CategoryState s, const Event& e);
struct CreateCategory {
  std::string category_id, name;
  std::optional<std::string> parent_id;
};
// `parent` is the state of c.parent_id's stream (ignored when there is no parent).
Decision decide(const CategoryState& s, const CreateCategory& c, const CategoryState& parent);

// ------------------------------------------------------------------------------- product
struct ProductState {
  bool exists = false;
  bool discontinued = false;
  std::string id, name, description, sku, category_id;
  std::int64_t price = 0;
  std::int64_t stock = 0;
  bool available() const { return exists && !discontinued; }
};
ProductState evolve(ProductState s, const Event& e);

struct CreateProduct {
  std::string product_id, name, description, sku, category_id;
  std::int64_t price = 0, stock = 0;
};
Decision decide(const ProductState& s, const CreateProduct& c, const CategoryState& category);

struct UpdateProduct {
  std::optional<std::string> name, description, sku, category_id;
  std::optional<std::int64_t> price;
};
// `category` is the state of c.category_id's stream when it is given.
Decision decide(const ProductState& s, const UpdateProduct& c, const CategoryState& category);

struct AdjustStock {
  std::int64_t delta = 0;
};
Decision decide(const ProductState& s, const AdjustStock& c);

struct DiscontinueProduct {};
Decision decide(const ProductState& s, const DiscontinueProduct& c);

// ---------------------------------------------------------------------------------- cart
struct CartLine {
  std::string product_id, name;
  std::int64_t unit_price = 0, quantity = 0;
};
struct CartState {
  std::string user_id;
  std::vector<CartLine> lines;
  const CartLine* line(std::string_view product_id) const;
};
CartState evolve(CartState s, const Event& e);

struct AddCartItem {
  std::string user_id, product_id;
  std::int64_t quantity = 0;
};
Decision decide(const CartState& s, const AddCartItem& c, const ProductState& product);

struct ChangeCartItemQuantity {
  std::string user_id, product_id;
  std::int64_t quantity = 0;  // 0 removes the line
};
Decision decide(const CartState& s, const ChangeCartItemQuantity& c, const ProductState& product);

struct RemoveCartItem {
  std::string user_id, product_id;
};
Decision decide(const CartState& s, const RemoveCartItem& c);

// --------------------------------------------------------------------------------- order
struct OrderState {
  bool exists = false;
  std::string id, number, user_id, status, currency;
  std::vector<events::OrderLine> lines;
  std::int64_t total = 0;
  std::optional<std::string> paid_by;  // payment id
};
OrderState evolve(OrderState s, const Event& e);

// Checkout: the order, a reservation on every product and the cart checkout, as one decision.
struct PlaceOrder {
  std::string order_id, order_number, user_id, currency;
};
Decision decide(const CartState& cart, const PlaceOrder& c,
                const std::map<std::string, ProductState>& products);

struct CancelOrder {
  std::string reason;
};
// Releases the stock of every line; `products` holds the state of each line's product.
Decision decide(const OrderState& s, const CancelOrder& c,
                const std::map<std::string, ProductState>& products);

struct ShipOrder {
  std::string carrier, tracking_number;
};
Decision decide(const OrderState& s, const ShipOrder& c);

struct DeliverOrder {};
Decision decide(const OrderState& s, const DeliverOrder& c);

// ------------------------------------------------------------------------------- payment
struct PaymentState {
  bool exists = false;
  std::string id, order_id, user_id, provider, status;  // initiated | captured | failed
  std::int64_t amount = 0;
};
PaymentState evolve(PaymentState s, const Event& e);

struct InitiatePayment {
  std::string payment_id, provider;
};
Decision decide(const OrderState& order, const InitiatePayment& c);

// A provider's report on a payment. Reports on a payment that is no longer "initiated" change
// nothing (webhooks are delivered at least once).
struct SettlePayment {
  bool succeeded = false;
  std::string reason;
};
Decision decide(const PaymentState& s, const SettlePayment& c, const OrderState& order);

}  // namespace shop::domain
