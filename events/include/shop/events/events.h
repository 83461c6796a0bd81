// The domain events of the shop: the bottom of the system. Each event is plain data with a type
// name, a schema version, the stream it belongs to, and a JSON form given by its field list.
// Changing a field means a new schema version (and an upcaster), never an edit in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shop/events/codec.h"

namespace shop::events {

using codec::field;
using std::int32_t;
using std::int64_t;

// Stream ids are "<category>-<uuid>".
inline std::string stream(std::string_view category, std::string_view id) {
  return std::string(category) + "-" + std::string(id);
}

#define SHOP_EVENT(Name, Category, IdField)                                  \
  static constexpr std::string_view kType = #Name;                           \
  static constexpr int kSchemaVersion = 1;                                   \
  static constexpr std::string_view kCategory = Category;                    \
  std::string stream_id() const { return stream(kCategory, IdField); }

// ---- identity ----
struct UserRegistered {
  SHOP_EVENT(UserRegistered, "user", user_id)
  std::string user_id, email, name;
  std::vector<std::string> roles;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &UserRegistered::user_id),
                           field("email", &UserRegistered::email),
                           field("name", &UserRegistered::name),
                           field("roles", &UserRegistered::roles));
  }
};

// The user changed their own profile. Only what changed is non-null: a new name, a new mobile
// number (E.164, e.g. "+4917012345678"). phone_removed: the account no longer has a mobile number
// (phone is then null).
struct UserProfileChanged {
  SHOP_EVENT(UserProfileChanged, "user", user_id)
  std::string user_id;
  std::optional<std::string> name, phone;
  bool phone_removed = false;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &UserProfileChanged::user_id),
                           field("name", &UserProfileChanged::name),
                           field("phone", &UserProfileChanged::phone),
                           field("phone_removed", &UserProfileChanged::phone_removed));
  }
};

// The user changed their password. The password and its hash are never in an event (they live in
// user_credentials); the user's other sessions are ended by the same append (SessionRevoked,
// password_changed).
struct UserPasswordChanged {
  SHOP_EVENT(UserPasswordChanged, "user", user_id)
  std::string user_id;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &UserPasswordChanged::user_id));
  }
};

// An admin set the user's roles: `roles` is the new full set (customer, staff, admin). When a
// role was taken away, the user's sessions are ended by the same append (SessionRevoked,
// roles_changed).
struct UserRolesChanged {
  SHOP_EVENT(UserRolesChanged, "user", user_id)
  std::string user_id;
  std::vector<std::string> roles;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &UserRolesChanged::user_id),
                           field("roles", &UserRolesChanged::roles));
  }
};

// ---- sessions (one stream per token family: session-<session_id>) ----
// A sign-in (login or registration) started a session: the refresh token issued with it is the
// family's current one. Token ids are the tokens' "jti" claims; the tokens themselves are never
// stored. expires_at is when the current refresh token expires (RFC 3339, UTC): every access
// token of the session expires before that.
struct SessionStarted {
  SHOP_EVENT(SessionStarted, "session", session_id)
  std::string session_id, user_id, refresh_id, expires_at;
  static constexpr auto fields() {
    return std::make_tuple(field("session_id", &SessionStarted::session_id),
                           field("user_id", &SessionStarted::user_id),
                           field("refresh_id", &SessionStarted::refresh_id),
                           field("expires_at", &SessionStarted::expires_at));
  }
};

// The current refresh token was spent for a new pair: refresh_id is the family's current one now.
struct RefreshTokenRotated {
  SHOP_EVENT(RefreshTokenRotated, "session", session_id)
  std::string session_id, user_id, spent_refresh_id, refresh_id, expires_at;
  static constexpr auto fields() {
    return std::make_tuple(field("session_id", &RefreshTokenRotated::session_id),
                           field("user_id", &RefreshTokenRotated::user_id),
                           field("spent_refresh_id", &RefreshTokenRotated::spent_refresh_id),
                           field("refresh_id", &RefreshTokenRotated::refresh_id),
                           field("expires_at", &RefreshTokenRotated::expires_at));
  }
};

// The session ended: none of its tokens is accepted any more. reason: logout (its refresh token
// was presented to log out), logout_all (the user logged out everywhere), reuse_detected (a spent
// refresh token of the family was presented again: it may have been stolen), password_changed
// (the user changed their password in another session), roles_changed (an admin took a role
// away from the user: tokens carrying it must stop working).
struct SessionRevoked {
  SHOP_EVENT(SessionRevoked, "session", session_id)
  std::string session_id, user_id, reason;
  static constexpr auto fields() {
    return std::make_tuple(field("session_id", &SessionRevoked::session_id),
                           field("user_id", &SessionRevoked::user_id),
                           field("reason", &SessionRevoked::reason));
  }
};

// ---- catalog ----
struct CategoryCreated {
  SHOP_EVENT(CategoryCreated, "category", category_id)
  std::string category_id, name;
  std::optional<std::string> parent_id;
  static constexpr auto fields() {
    return std::make_tuple(field("category_id", &CategoryCreated::category_id),
                           field("name", &CategoryCreated::name),
                           field("parent_id", &CategoryCreated::parent_id));
  }
};

struct ProductCreated {
  SHOP_EVENT(ProductCreated, "product", product_id)
  std::string product_id, name, description, sku, category_id;
  int64_t price = 0;  // minor units of the store currency
  int64_t stock = 0;
  static constexpr auto fields() {
    return std::make_tuple(
        field("product_id", &ProductCreated::product_id), field("name", &ProductCreated::name),
        field("description", &ProductCreated::description), field("sku", &ProductCreated::sku),
        field("category_id", &ProductCreated::category_id), field("price", &ProductCreated::price),
        field("stock", &ProductCreated::stock));
  }
};

// Only the fields that changed are present.
struct ProductUpdated {
  SHOP_EVENT(ProductUpdated, "product", product_id)
  std::string product_id;
  std::optional<std::string> name, description, sku, category_id;
  std::optional<int64_t> price;
  static constexpr auto fields() {
    return std::make_tuple(
        field("product_id", &ProductUpdated::product_id), field("name", &ProductUpdated::name),
        field("description", &ProductUpdated::description), field("sku", &ProductUpdated::sku),
        field("category_id", &ProductUpdated::category_id), field("price", &ProductUpdated::price));
  }
};

struct ProductDiscontinued {
  SHOP_EVENT(ProductDiscontinued, "product", product_id)
  std::string product_id;
  static constexpr auto fields() {
    return std::make_tuple(field("product_id", &ProductDiscontinued::product_id));
  }
};

struct StockAdjusted {
  SHOP_EVENT(StockAdjusted, "product", product_id)
  std::string product_id;
  int64_t delta = 0, stock_after = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("product_id", &StockAdjusted::product_id),
                           field("delta", &StockAdjusted::delta),
                           field("stock_after", &StockAdjusted::stock_after));
  }
};

struct StockReserved {
  SHOP_EVENT(StockReserved, "product", product_id)
  std::string product_id, order_id;
  int64_t quantity = 0, stock_after = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("product_id", &StockReserved::product_id),
                           field("order_id", &StockReserved::order_id),
                           field("quantity", &StockReserved::quantity),
                           field("stock_after", &StockReserved::stock_after));
  }
};

struct StockReleased {
  SHOP_EVENT(StockReleased, "product", product_id)
  std::string product_id, order_id;
  int64_t quantity = 0, stock_after = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("product_id", &StockReleased::product_id),
                           field("order_id", &StockReleased::order_id),
                           field("quantity", &StockReleased::quantity),
                           field("stock_after", &StockReleased::stock_after));
  }
};

// ---- cart (one stream per user: cart-<user_id>) ----
struct CartItemAdded {
  SHOP_EVENT(CartItemAdded, "cart", user_id)
  std::string user_id, product_id, name;
  int64_t unit_price = 0;  // price snapshot when added
  int64_t quantity = 0;    // quantity added
  int64_t line_quantity = 0;  // quantity of the line afterwards
  static constexpr auto fields() {
    return std::make_tuple(
        field("user_id", &CartItemAdded::user_id), field("product_id", &CartItemAdded::product_id),
        field("name", &CartItemAdded::name), field("unit_price", &CartItemAdded::unit_price),
        field("quantity", &CartItemAdded::quantity),
        field("line_quantity", &CartItemAdded::line_quantity));
  }
};

struct CartItemQuantityChanged {
  SHOP_EVENT(CartItemQuantityChanged, "cart", user_id)
  std::string user_id, product_id;
  int64_t quantity = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &CartItemQuantityChanged::user_id),
                           field("product_id", &CartItemQuantityChanged::product_id),
                           field("quantity", &CartItemQuantityChanged::quantity));
  }
};

struct CartItemRemoved {
  SHOP_EVENT(CartItemRemoved, "cart", user_id)
  std::string user_id, product_id;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &CartItemRemoved::user_id),
                           field("product_id", &CartItemRemoved::product_id));
  }
};

struct CartCheckedOut {
  SHOP_EVENT(CartCheckedOut, "cart", user_id)
  std::string user_id, order_id;
  static constexpr auto fields() {
    return std::make_tuple(field("user_id", &CartCheckedOut::user_id),
                           field("order_id", &CartCheckedOut::order_id));
  }
};

// ---- orders ----
struct OrderLine {
  std::string product_id, name;
  int64_t unit_price = 0, quantity = 0, line_total = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("product_id", &OrderLine::product_id),
                           field("name", &OrderLine::name),
                           field("unit_price", &OrderLine::unit_price),
                           field("quantity", &OrderLine::quantity),
                           field("line_total", &OrderLine::line_total));
  }
};

struct OrderPlaced {
  SHOP_EVENT(OrderPlaced, "order", order_id)
  std::string order_id, order_number, user_id, currency;
  std::vector<OrderLine> lines;
  int64_t total = 0;
  static constexpr auto fields() {
    return std::make_tuple(
        field("order_id", &OrderPlaced::order_id),
        field("order_number", &OrderPlaced::order_number), field("user_id", &OrderPlaced::user_id),
        field("lines", &OrderPlaced::lines), field("total", &OrderPlaced::total),
        field("currency", &OrderPlaced::currency));
  }
};

struct OrderCancelled {
  SHOP_EVENT(OrderCancelled, "order", order_id)
  std::string order_id, reason;
  static constexpr auto fields() {
    return std::make_tuple(field("order_id", &OrderCancelled::order_id),
                           field("reason", &OrderCancelled::reason));
  }
};

struct OrderPaid {
  SHOP_EVENT(OrderPaid, "order", order_id)
  std::string order_id, payment_id;
  int64_t amount = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("order_id", &OrderPaid::order_id),
                           field("payment_id", &OrderPaid::payment_id),
                           field("amount", &OrderPaid::amount));
  }
};

struct OrderShipped {
  SHOP_EVENT(OrderShipped, "order", order_id)
  std::string order_id, carrier, tracking_number;
  static constexpr auto fields() {
    return std::make_tuple(field("order_id", &OrderShipped::order_id),
                           field("carrier", &OrderShipped::carrier),
                           field("tracking_number", &OrderShipped::tracking_number));
  }
};

struct OrderDelivered {
  SHOP_EVENT(OrderDelivered, "order", order_id)
  std::string order_id;
  static constexpr auto fields() {
    return std::make_tuple(field("order_id", &OrderDelivered::order_id));
  }
};

// ---- payments ----
struct PaymentInitiated {
  SHOP_EVENT(PaymentInitiated, "payment", payment_id)
  std::string payment_id, order_id, user_id, provider, currency;
  int64_t amount = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("payment_id", &PaymentInitiated::payment_id),
                           field("order_id", &PaymentInitiated::order_id),
                           field("user_id", &PaymentInitiated::user_id),
                           field("provider", &PaymentInitiated::provider),
                           field("amount", &PaymentInitiated::amount),
                           field("currency", &PaymentInitiated::currency));
  }
};

struct PaymentCaptured {
  SHOP_EVENT(PaymentCaptured, "payment", payment_id)
  std::string payment_id, order_id;
  int64_t amount = 0;
  static constexpr auto fields() {
    return std::make_tuple(field("payment_id", &PaymentCaptured::payment_id),
                           field("order_id", &PaymentCaptured::order_id),
                           field("amount", &PaymentCaptured::amount));
  }
};

struct PaymentFailed {
  SHOP_EVENT(PaymentFailed, "payment", payment_id)
  std::string payment_id, order_id, reason;
  static constexpr auto fields() {
    return std::make_tuple(field("payment_id", &PaymentFailed::payment_id),
                           field("order_id", &PaymentFailed::order_id),
                           field("reason", &PaymentFailed::reason));
  }
};

#undef SHOP_EVENT

using Event =
    std::variant<UserRegistered, UserProfileChanged, UserPasswordChanged, UserRolesChanged,
                 SessionStarted, RefreshTokenRotated, SessionRevoked, CategoryCreated,
                 ProductCreated, ProductUpdated, ProductDiscontinued, StockAdjusted, StockReserved,
                 StockReleased, CartItemAdded, CartItemQuantityChanged, CartItemRemoved,
                 CartCheckedOut, OrderPlaced, OrderCancelled, OrderPaid, OrderShipped,
                 OrderDelivered, PaymentInitiated, PaymentCaptured, PaymentFailed>;

std::string_view type_of(const Event& e);
int schema_version_of(const Event& e);
std::string stream_of(const Event& e);
std::string data_of(const Event& e);  // the payload as compact JSON

// Every event type name, in declaration order.
const std::vector<std::string_view>& all_types();
// Every stream category (user, session, category, product, cart, order, payment), each once.
const std::vector<std::string_view>& all_categories();

// Decodes a stored payload. Throws codec::DecodeError on an unknown type or a malformed payload.
Event decode(std::string_view type, int schema_version, std::string_view data);

// The category part of a stream id ("order" for "order-<uuid>").
std::string_view category_of(std::string_view stream_id);

// An event as stored: its envelope and payload.
struct RecordedEvent {
  std::int64_t position = 0;
  std::string event_id;
  std::string stream_id;
  std::int64_t stream_version = 0;
  std::string type;
  int schema_version = 1;
  std::string occurred_at;  // RFC 3339, UTC
  std::string correlation_id;
  std::string causation_id;
  std::optional<std::string> actor;
  std::string data;  // JSON

  Event decode() const { return events::decode(type, schema_version, data); }
};

}  // namespace shop::events
