// Views as they were at an earlier moment (GET /api/orders/{id}?as_of=..., GET
// /api/cart?as_of=...): folded from the event store up to a bound, with the domain's own evolve
// functions, instead of read from the read models. The JSON is that of the live views, field for
// field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "context.h"
#include "shop/events/types.h"
#include "shop/infra/auth.h"
#include "shop/infra/http.h"

namespace shop::query {

// Where an as-of view stops: the events whose global position is at most `position`, or those
// whose occurred_at is at most `time`. Exactly one of the two is set.
struct AsOf {
  std::optional<std::int64_t> position;
  std::optional<Timestamp> time;
};

// The `as_of` query parameter: a non-negative integer (a position) or an RFC 3339 time with `Z`
// or an offset. nullopt when absent or empty (the live view); anything else is 400
// invalid_parameter naming `as_of`.
std::optional<AsOf> as_of_param(const http::Request& req);

// The order as it was at the bound: its own stream and the streams of its payments. 404 when
// the order did not exist yet, or when the caller is neither its owner nor staff.
std::string render_order_as_of(Context& ctx, const infra::Principal& caller,
                               const std::string& order_id, const AsOf& as_of);

// The user's cart as it was at the bound (the empty cart before its first event), each line with
// the name and unit price the live view showed then.
std::string render_cart_as_of(Context& ctx, const std::string& user_id, const AsOf& as_of);

}  // namespace shop::query
