#include "shop/domain/aggregates.h"

#include <algorithm>

#include "shop/domain/phone.h"

namespace shop::domain {

namespace ev = shop::events;

namespace {
template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

DomainError not_found(std::string what) {
  return {"not_found", what + " not found"};
}
DomainError conflict(std::string code, std::string message, std::vector<std::string> details = {}) {
  return {std::move(code), std::move(message), std::move(details)};
}
Decision one(Event e) { return Events{std::move(e)}; }
}  // namespace

// ---------------------------------------------------------------------------------- user
bool UserState::has_role(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

UserState evolve(UserState s, const Event& e) {
  std::visit(Overloaded{
                 [&](const ev::UserRegistered& r) {
                   s.exists = true;
                   s.id = r.user_id;
                   s.email = r.email;
                   s.name = r.name;
                   s.roles = r.roles;
                 },
                 [&](const ev::UserProfileChanged& x) {
                   if (x.name) s.name = *x.name;
                   if (x.phone) s.phone = x.phone;
                   if (x.phone_removed) s.phone.reset();
                 },
                 [&](const ev::UserRolesChanged& x) { s.roles = x.roles; },
                 [](const auto&) {},
             },
             e);
  return s;
}

Decision decide(const UserState& s, const RegisterUser& c) {
  if (s.exists) return conflict("already_exists", "user already exists");
  return one(ev::UserRegistered{.user_id = c.user_id, .email = c.email, .name = c.name,
                                .roles = c.roles});
}

// ------------------------------------------------------------------------------- session
SessionState evolve(SessionState s, const Event& e) {
  std::visit(Overloaded{
                 [&](const ev::SessionStarted& x) {
                   s.exists = true;
                   s.id = x.session_id;
                   s.user_id = x.user_id;
                   s.refresh_id = x.refresh_id;
                   s.expires_at = x.expires_at;
                 },
                 [&](const ev::RefreshTokenRotated& x) {
                   s.refresh_id = x.refresh_id;
                   s.expires_at = x.expires_at;
                 },
                 [&](const ev::SessionRevoked& x) {
                   s.revoked = true;
                   s.revoke_reason = x.reason;
                 },
                 [](const auto&) {},
             },
             e);
  return s;
}

Decision decide(const SessionState& s, const StartSession& c) {
  if (s.exists) return conflict("already_exists", "session already exists");
  return one(ev::SessionStarted{.session_id = c.session_id,
                                .user_id = c.user_id,
                                .refresh_id = c.refresh_id,
                                .expires_at = c.expires_at});
}

namespace {
DomainError invalid_token() {
  return {"invalid_token", "the refresh token is invalid, spent or revoked"};
}
}  // namespace

Decision decide(const SessionState& s, const RotateRefreshToken& c) {
  if (!s.exists || s.revoked || s.user_id != c.user_id) return invalid_token();
  if (c.presented_refresh_id != s.refresh_id) {
    return one(
        ev::SessionRevoked{.session_id = s.id, .user_id = s.user_id, .reason = "reuse_detected"});
  }
  return one(ev::RefreshTokenRotated{.session_id = s.id,
                                     .user_id = s.user_id,
                                     .spent_refresh_id = s.refresh_id,
                                     .refresh_id = c.new_refresh_id,
                                     .expires_at = c.expires_at});
}

bool revokes_session(const Events& events) {
  return std::any_of(events.begin(), events.end(),
                     [](const Event& e) { return std::holds_alternative<ev::SessionRevoked>(e); });
}

Decision decide(const SessionState& s, const RevokeSession& c) {
  if (!s.exists || s.user_id != c.user_id) return not_found("session");
  if (c.reason != "logout" && c.reason != "logout_all") {
    return conflict("invalid_value", "unknown revocation reason " + c.reason);
  }
  if (s.revoked) return Events{};
  return one(ev::SessionRevoked{.session_id = s.id, .user_id = s.user_id, .reason = c.reason});
}

// ------------------------------------------------------------- user: profile, password, roles
std::optional<std::vector<std::string>> role_set(const std::vector<std::string>& roles) {
  if (roles.empty()) return std::nullopt;
  for (const auto& r : roles) {
    if (std::find(std::begin(kRoles), std::end(kRoles), r) == std::end(kRoles)) return std::nullopt;
  }
  std::vector<std::string> out;
  for (auto role : kRoles) {
    if (std::find(roles.begin(), roles.end(), role) != roles.end()) out.emplace_back(role);
  }
  return out;
}

bool removes_a_role(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  return std::any_of(before.begin(), before.end(), [&](const std::string& r) {
    return std::find(after.begin(), after.end(), r) == after.end();
  });
}

Decision decide(const UserState& s, const ChangeProfile& c) {
  if (!s.exists) return not_found("user");
  if (c.name && c.name->empty()) {
    return DomainError{"invalid_value", "the name must not be empty", {"name: empty"}};
  }
  if (c.phone && c.remove_phone) {
    return DomainError{"invalid_value", "a phone number cannot be set and removed at once"};
  }
  if (c.phone && !is_e164(*c.phone)) {
    return DomainError{"invalid_value",
                       "the phone number must be in international form, such as +4917012345678",
                       {"phone: not an E.164 number"}};
  }
  ev::UserProfileChanged changed{.user_id = s.id};
  if (c.name && *c.name != s.name) changed.name = c.name;
  if (c.phone && c.phone != s.phone) changed.phone = c.phone;
  if (c.remove_phone && s.phone) changed.phone_removed = true;
  if (!changed.name && !changed.phone && !changed.phone_removed) return Events{};
  return one(std::move(changed));
}

namespace {
// SessionRevoked for every live session of the user in `sessions` but `keep`.
void revoke_sessions(const UserState& s, const UserSessions& sessions, const std::string& keep,
                     const char* reason, Events& out) {
  for (const auto& [id, session] : sessions) {
    if (!session.exists || session.revoked || session.user_id != s.id || id != session.id ||
        id == keep) {
      continue;
    }
    out.push_back(ev::SessionRevoked{.session_id = id, .user_id = s.id, .reason = reason});
  }
}
}  // namespace

Decision decide(const UserState& s, const ChangePassword& c, const UserSessions& sessions) {
  if (!s.exists) return not_found("user");
  Events out{ev::UserPasswordChanged{.user_id = s.id}};
  revoke_sessions(s, sessions, c.keep_session_id, "password_changed", out);
  return out;
}

Decision decide(const UserState& s, const SetRoles& c, const UserSessions& sessions) {
  if (!s.exists) return not_found("user");
  auto roles = role_set(c.roles);
  if (!roles) {
    return DomainError{"invalid_value",
                       "roles must be a non-empty set of customer, staff and admin",
                       {"roles: not a set of known roles"}};
  }
  if (const auto current = role_set(s.roles); current && *current == *roles) return Events{};
  const bool removes = removes_a_role(s.roles, *roles);
  if (c.actor_id == s.id && s.has_role("admin") &&
      std::find(roles->begin(), roles->end(), "admin") == roles->end()) {
    return conflict("cannot_remove_own_admin",
                    "an admin cannot take the admin role from themselves; ask another admin");
  }
  Events out{ev::UserRolesChanged{.user_id = s.id, .roles = std::move(*roles)}};
  if (removes) revoke_sessions(s, sessions, "", "roles_changed", out);
  return out;
}

// ------------------------------------------------------------------------------ category
CategoryState evolve(CategoryState s, const Event& e) {
  if (const auto* c = std::get_if<ev::CategoryCreated>(&e)) {
    s.exists = true;
    s.id = c->category_id;
    s.name = c->name;
    s.parent_id = c->parent_id;
  }
  return s;
}

Decision decide(const CategoryState& s, const CreateCategory& c, const CategoryState& parent) {
  if (s.exists) return conflict("already_exists", "category already exists");
  if (c.parent_id && !parent.exists) return not_found("parent category");
  return one(ev::CategoryCreated{.category_id = c.category_id, .name = c.name,
                                 .parent_id = c.parent_id});
}

// ------------------------------------------------------------------------------- product
ProductState evolve(ProductState s, const Event& e) {
  std::visit(Overloaded{
                 [&](const ev::ProductCreated& p) {
                   s.exists = true;
                   s.id = p.product_id;
                   s.name = p.name;
                   s.description = p.description;
                   s.sku = p.sku;
                   s.category_id = p.category_id;
                   s.price = p.price;
                   s.stock = p.stock;
                 },
                 [&](const ev::ProductUpdated& p) {
                   if (p.name) s.name = *p.name;
                   if (p.description) s.description = *p.description;
                   if (p.sku) s.sku = *p.sku;
                   if (p.category_id) s.category_id = *p.category_id;
                   if (p.price) s.price = *p.price;
                 },
                 [&](const ev::ProductDiscontinued&) { s.discontinued = true; },
                 [&](const ev::StockAdjusted& p) { s.stock = p.stock_after; },
                 [&](const ev::StockReserved& p) { s.stock = p.stock_after; },
                 [&](const ev::StockReleased& p) { s.stock = p.stock_after; },
                 [](const auto&) {},
             },
             e);
  return s;
}

Decision decide(const ProductState& s, const CreateProduct& c, const CategoryState& category) {
  if (s.exists) return conflict("already_exists", "product already exists");
  if (!category.exists) return not_found("category");
  if (c.price < 0 || c.stock < 0) return DomainError{"invalid_value", "price and stock must not be negative"};
  return one(ev::ProductCreated{.product_id = c.product_id, .name = c.name,
                                .description = c.description, .sku = c.sku,
                                .category_id = c.category_id, .price = c.price, .stock = c.stock});
}

Decision decide(const ProductState& s, const UpdateProduct& c, const CategoryState& category) {
  if (!s.exists || s.discontinued) return not_found("product");
  ev::ProductUpdated u{.product_id = s.id};
  bool changed = false;
  auto set = [&](auto& out, const auto& in, const auto& current) {
    if (in && *in != current) {
      out = in;
      changed = true;
    }
  };
  set(u.name, c.name, s.name);
  set(u.description, c.description, s.description);
  set(u.sku, c.sku, s.sku);
  set(u.price, c.price, s.price);
  if (c.category_id && *c.category_id != s.category_id) {
    if (!category.exists) return not_found("category");
    u.category_id = c.category_id;
    changed = true;
  }
  if (u.price && *u.price < 0) return DomainError{"invalid_value", "price must not be negative"};
  if (!changed) return Events{};
  return one(std::move(u));
}

Decision decide(const ProductState& s, const AdjustStock& c) {
  if (!s.exists) return not_found("product");
  if (c.delta == 0) return Events{};
  if (s.stock + c.delta < 0) {
    return conflict("insufficient_stock", "stock cannot go below zero",
                    {"stock is " + std::to_string(s.stock)});
  }
  return one(ev::StockAdjusted{.product_id = s.id, .delta = c.delta,
                               .stock_after = s.stock + c.delta});
}

Decision decide(const ProductState& s, const DiscontinueProduct&) {
  if (!s.exists) return not_found("product");
  if (s.discontinued) return Events{};
  return one(ev::ProductDiscontinued{.product_id = s.id});
}

// ---------------------------------------------------------------------------------- cart
const CartLine* CartState::line(std::string_view product_id) const {
  for (const auto& l : lines) {
    if (l.product_id == product_id) return &l;
  }
  return nullptr;
}

CartState evolve(CartState s, const Event& e) {
  auto find = [&](const std::string& product_id) {
    return std::find_if(s.lines.begin(), s.lines.end(),
                        [&](const CartLine& l) { return l.product_id == product_id; });
  };
  std::visit(Overloaded{
                 [&](const ev::CartItemAdded& a) {
                   s.user_id = a.user_id;
                   auto it = find(a.product_id);
                   if (it == s.lines.end()) {
                     s.lines.push_back({a.product_id, a.name, a.unit_price, a.line_quantity});
                   } else {
                     it->name = a.name;
                     it->unit_price = a.unit_price;
                     it->quantity = a.line_quantity;
                   }
                 },
                 [&](const ev::CartItemQuantityChanged& q) {
                   if (auto it = find(q.product_id); it != s.lines.end()) it->quantity = q.quantity;
                 },
                 [&](const ev::CartItemRemoved& r) {
                   if (auto it = find(r.product_id); it != s.lines.end()) s.lines.erase(it);
                 },
                 [&](const ev::CartCheckedOut&) { s.lines.clear(); },
                 [](const auto&) {},
             },
             e);
  return s;
}

namespace {
std::optional<DomainError> check_line_quantity(std::int64_t quantity, const ProductState& p) {
  if (quantity < 1 || quantity > kMaxLineQuantity) {
    return DomainError{"invalid_quantity",
                       "quantity must be between 1 and " + std::to_string(kMaxLineQuantity)};
  }
  if (!p.available()) return not_found("product");
  if (quantity > p.stock) {
    return DomainError{"insufficient_stock", "not enough stock",
                       {p.id + ": " + std::to_string(p.stock) + " available"}};
  }
  return std::nullopt;
}
}  // namespace

Decision decide(const CartState& s, const AddCartItem& c, const ProductState& product) {
  const CartLine* existing = s.line(c.product_id);
  if (c.quantity < 1) return DomainError{"invalid_quantity", "quantity must be at least 1"};
  const std::int64_t total = (existing ? existing->quantity : 0) + c.quantity;
  if (auto err = check_line_quantity(total, product)) return *err;
  return one(ev::CartItemAdded{.user_id = c.user_id, .product_id = c.product_id,
                               .name = product.name, .unit_price = product.price,
                               .quantity = c.quantity, .line_quantity = total});
}

Decision decide(const CartState& s, const ChangeCartItemQuantity& c, const ProductState& product) {
  const CartLine* existing = s.line(c.product_id);
  if (!existing) return not_found("cart item");
  if (c.quantity == 0) {
    return one(ev::CartItemRemoved{.user_id = c.user_id, .product_id = c.product_id});
  }
  if (c.quantity == existing->quantity) return Events{};
  if (auto err = check_line_quantity(c.quantity, product)) return *err;
  return one(ev::CartItemQuantityChanged{.user_id = c.user_id, .product_id = c.product_id,
                                         .quantity = c.quantity});
}

Decision decide(const CartState& s, const RemoveCartItem& c) {
  if (!s.line(c.product_id)) return not_found("cart item");
  return one(ev::CartItemRemoved{.user_id = c.user_id, .product_id = c.product_id});
}

// --------------------------------------------------------------------------------- order
OrderState evolve(OrderState s, const Event& e) {
  std::visit(Overloaded{
                 [&](const ev::OrderPlaced& p) {
                   s.exists = true;
                   s.id = p.order_id;
                   s.number = p.order_number;
                   s.user_id = p.user_id;
                   s.currency = p.currency;
                   s.lines = p.lines;
                   s.total = p.total;
                   s.status = "pending";
                 },
                 [&](const ev::OrderPaid& p) {
                   s.status = "paid";
                   s.paid_by = p.payment_id;
                 },
                 [&](const ev::OrderShipped&) { s.status = "shipped"; },
                 [&](const ev::OrderDelivered&) { s.status = "delivered"; },
                 [&](const ev::OrderCancelled&) { s.status = "cancelled"; },
                 [](const auto&) {},
             },
             e);
  return s;
}

Decision decide(const CartState& cart, const PlaceOrder& c,
                const std::map<std::string, ProductState>& products) {
  if (cart.lines.empty()) return conflict("cart_empty", "the cart is empty");
  ev::OrderPlaced placed{.order_id = c.order_id, .order_number = c.order_number,
                         .user_id = c.user_id, .currency = c.currency};
  Events reservations;
  std::vector<std::string> unavailable, short_stock;
  for (const auto& line : cart.lines) {
    auto it = products.find(line.product_id);
    if (it == products.end() || !it->second.available()) {
      unavailable.push_back(line.product_id);
      continue;
    }
    const ProductState& p = it->second;
    if (p.stock < line.quantity) {
      short_stock.push_back(p.id + ": " + std::to_string(p.stock) + " available, " +
                            std::to_string(line.quantity) + " wanted");
      continue;
    }
    // The order takes the product's current price; the cart's price is only a snapshot.
    const std::int64_t line_total = p.price * line.quantity;
    placed.lines.push_back({.product_id = p.id, .name = p.name, .unit_price = p.price,
                            .quantity = line.quantity, .line_total = line_total});
    placed.total += line_total;
    reservations.push_back(ev::StockReserved{.product_id = p.id, .order_id = c.order_id,
                                             .quantity = line.quantity,
                                             .stock_after = p.stock - line.quantity});
  }
  if (!unavailable.empty()) {
    return conflict("product_unavailable", "some products can no longer be bought", unavailable);
  }
  if (!short_stock.empty()) {
    return conflict("insufficient_stock", "not enough stock for some products", short_stock);
  }
  Events out;
  out.reserve(reservations.size() + 2);
  out.push_back(std::move(placed));
  for (auto& r : reservations) out.push_back(std::move(r));
  out.push_back(ev::CartCheckedOut{.user_id = c.user_id, .order_id = c.order_id});
  return out;
}

namespace {
DomainError bad_transition(const OrderState& s, std::string_view action) {
  return conflict("invalid_order_status",
                  "cannot " + std::string(action) + " an order that is " + s.status);
}
}  // namespace

Decision decide(const OrderState& s, const CancelOrder& c,
                const std::map<std::string, ProductState>& products) {
  if (!s.exists) return not_found("order");
  if (s.status != "pending") return bad_transition(s, "cancel");
  Events out{ev::OrderCancelled{.order_id = s.id, .reason = c.reason}};
  // Lines of one product are released together, in one event per product.
  std::map<std::string, std::int64_t> per_product;
  for (const auto& line : s.lines) per_product[line.product_id] += line.quantity;
  for (const auto& [product_id, quantity] : per_product) {
    auto it = products.find(product_id);
    if (it == products.end() || !it->second.exists) continue;
    out.push_back(ev::StockReleased{.product_id = product_id, .order_id = s.id,
                                    .quantity = quantity,
                                    .stock_after = it->second.stock + quantity});
  }
  return out;
}

Decision decide(const OrderState& s, const ShipOrder& c) {
  if (!s.exists) return not_found("order");
  if (s.status != "paid") return bad_transition(s, "ship");
  return one(ev::OrderShipped{.order_id = s.id, .carrier = c.carrier,
                              .tracking_number = c.tracking_number});
}

Decision decide(const OrderState& s, const DeliverOrder&) {
  if (!s.exists) return not_found("order");
  if (s.status != "shipped") return bad_transition(s, "deliver");
  return one(ev::OrderDelivered{.order_id = s.id});
}

// ------------------------------------------------------------------------------- payment
PaymentState evolve(PaymentState s, const Event& e) {
  std::visit(Overloaded{
                 [&](const ev::PaymentInitiated& p) {
                   s.exists = true;
                   s.id = p.payment_id;
                   s.order_id = p.order_id;
                   s.user_id = p.user_id;
                   s.provider = p.provider;
                   s.amount = p.amount;
                   s.status = "initiated";
                 },
                 [&](const ev::PaymentCaptured&) { s.status = "captured"; },
                 [&](const ev::PaymentFailed&) { s.status = "failed"; },
                 [](const auto&) {},
             },
             e);
  return s;
}

Decision decide(const OrderState& order, const InitiatePayment& c) {
  if (!order.exists) return not_found("order");
  if (order.status != "pending") return bad_transition(order, "pay for");
  return one(ev::PaymentInitiated{.payment_id = c.payment_id, .order_id = order.id,
                                  .user_id = order.user_id, .provider = c.provider,
                                  .currency = order.currency, .amount = order.total});
}

Decision decide(const PaymentState& s, const SettlePayment& c, const OrderState& order) {
  if (!s.exists) return not_found("payment");
  if (s.status != "initiated") return Events{};  // a repeated report changes nothing
  if (!c.succeeded) {
    return one(ev::PaymentFailed{.payment_id = s.id, .order_id = s.order_id,
                                 .reason = c.reason.empty() ? "declined" : c.reason});
  }
  Events out{ev::PaymentCaptured{.payment_id = s.id, .order_id = s.order_id, .amount = s.amount}};
  // The order is marked paid only while it still waits for payment. A capture for an order that
  // was cancelled or paid by another payment stays recorded on the payment for a refund.
  if (order.exists && order.status == "pending") {
    out.push_back(ev::OrderPaid{.order_id = order.id, .payment_id = s.id, .amount = s.amount});
  }
  return out;
}

}  // namespace shop::domain
