// As-of views: an order or a cart folded from the event store up to a position or a time, with
// the domain's evolve functions, and shown the way the read models show it (the rules of
// projector/src/projector.cpp, one by one, in the comments below).
#include "as_of.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <tuple>
#include <utility>
#include <vector>

#include "params.h"
#include "shop/domain/aggregates.h"
#include "shop/events/events.h"
#include "shop/infra/event_store.h"

namespace shop::query {

namespace ev = shop::events;

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// --- the bound ----------------------------------------------------------------------------------

// The bound as two statement parameters, both always applied: a position (the greatest bigint
// when the bound is a time) and a timestamptz ('infinity' when the bound is a position).
struct Bound {
  std::string position;
  std::string time;
};

Bound bound_of(const AsOf& as_of) {
  using namespace std::chrono;
  Bound b{std::to_string(as_of.position.value_or(std::numeric_limits<std::int64_t>::max())),
          "infinity"};
  if (as_of.time) {
    // PostgreSQL has no year 0 and RFC 3339 no year past 9999: a time outside them (reachable
    // through an offset) is before, or after, every event.
    static const Timestamp kFirst = sys_days{year{1} / January / 1};
    static const Timestamp kLast = sys_days{year{9999} / December / 31} + days{1} - microseconds{1};
    if (*as_of.time < kFirst) {
      b.time = "-infinity";
    } else if (*as_of.time <= kLast) {
      b.time = format_time(*as_of.time);
    }
  }
  return b;
}

std::vector<ev::RecordedEvent> events_of(const pqxx::result& rows) {
  std::vector<ev::RecordedEvent> out;
  out.reserve(rows.size());
  for (const auto& row : rows) out.push_back(infra::event_from_row(row));
  return out;
}

// The bound's condition, with the numbers of its two parameters.
std::string bounded(int position_param, int time_param) {
  return " AND position <= $" + std::to_string(position_param) + "::bigint AND occurred_at <= $" +
         std::to_string(time_param) + "::timestamptz";
}

// The order's stream and the streams of its payments, up to the bound, by position. The payments
// are found by the order id in their events' data (every payment event carries it), through the
// partial index events_payment_order (migration 9) instead of a scan of the payment streams.
const Statement kOrderEvents{"q_as_of_order", std::string("SELECT ") + infra::kEventColumns +
                                                  " FROM events WHERE stream_id = $1" +
                                                  bounded(3, 4) + " UNION ALL SELECT " +
                                                  infra::kEventColumns +
                                                  " FROM events WHERE stream_id LIKE 'payment-%'"
                                                  " AND (data->>'order_id') = $2" +
                                                  bounded(3, 4) + " ORDER BY position"};

// The user's cart stream up to the bound.
const Statement kCartEvents{"q_as_of_cart", std::string("SELECT ") + infra::kEventColumns +
                                                " FROM events WHERE stream_id = $1" +
                                                bounded(2, 3) + " ORDER BY stream_version"};

// The events that set the names and prices of the given products ($1, a text[] of stream ids),
// up to the bound, through the partial index events_product_catalog (migration 9): a product's
// stock movements, the bulk of its stream, are not read.
const Statement kProductEvents{"q_as_of_products",
                               std::string("SELECT ") + infra::kEventColumns +
                                   " FROM events WHERE stream_id = ANY($1::text[])"
                                   " AND type IN ('ProductCreated', 'ProductUpdated')" +
                                   bounded(2, 3) + " ORDER BY position"};

// --- JSON ---------------------------------------------------------------------------------------

void write_key_text(json::Writer& w, const char* key, std::string_view text) {
  w.Key(key);
  write_text(w, text);
}

void write_key_money(json::Writer& w, const char* key, Minor amount, int exponent) {
  w.Key(key);
  w.String(format_money(amount, exponent));
}

// --- GET /api/orders/{id}?as_of= -----------------------------------------------------------------

struct Payment {
  domain::PaymentState state;
  std::int64_t initiated_position = 0;
};

struct Shipment {
  std::string carrier, tracking_number, shipped_at;
};

struct OrderView {
  domain::OrderState order;
  std::string created_at, updated_at;
  std::vector<std::pair<std::string, std::string>> history;  // status, at
  std::optional<Shipment> shipment;
  std::map<std::string, Payment> payments;  // by stream id
};

// Folds the order's and its payments' events, given in position order.
OrderView fold_order(const std::vector<ev::RecordedEvent>& events) {
  OrderView v;
  for (const auto& e : events) {
    const ev::Event event = e.decode();
    if (ev::category_of(e.stream_id) == ev::PaymentInitiated::kCategory) {
      Payment& p = v.payments[e.stream_id];
      if (std::holds_alternative<ev::PaymentInitiated>(event)) p.initiated_position = e.position;
      p.state = domain::evolve(std::move(p.state), event);
    } else {
      v.order = domain::evolve(std::move(v.order), event);
      // Each status change (every order event today) adds to the history, at its time.
      bool moves_status = true;
      std::visit(Overloaded{
                     [&](const ev::OrderPlaced&) { v.created_at = e.occurred_at; },
                     [&](const ev::OrderShipped& s) {
                       v.shipment = Shipment{s.carrier, s.tracking_number, e.occurred_at};
                     },
                     [](const ev::OrderPaid&) {},
                     [](const ev::OrderDelivered&) {},
                     [](const ev::OrderCancelled&) {},
                     [&](const auto&) { moves_status = false; },
                 },
                 event);
      if (moves_status) v.history.emplace_back(v.order.status, e.occurred_at);
    }
    // updated_at: the time of the order's or its payments' event with the greatest position.
    v.updated_at = e.occurred_at;
  }
  return v;
}

// The order's latest payment attempt: the one initiated last (greatest position).
const Payment* latest_payment(const OrderView& v) {
  const Payment* latest = nullptr;
  for (const auto& [stream_id, p] : v.payments) {
    if (p.state.exists && (!latest || p.initiated_position > latest->initiated_position)) {
      latest = &p;
    }
  }
  return latest;
}

std::string write_order(const OrderView& v) {
  const domain::OrderState& o = v.order;
  const int exponent = currency_exponent(o.currency);
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  write_key_text(w, "order_id", to_lower(o.id));
  write_key_text(w, "order_number", o.number);
  write_key_text(w, "user_id", to_lower(o.user_id));
  write_key_text(w, "status", o.status);
  w.Key("items");
  w.StartArray();
  for (const auto& line : o.lines) {
    w.StartObject();
    write_key_text(w, "product_id", line.product_id);
    write_key_text(w, "name", line.name);
    write_key_money(w, "unit_price", line.unit_price, exponent);
    w.Key("quantity");
    w.Int64(line.quantity);
    write_key_money(w, "line_total", line.line_total, exponent);
    w.EndObject();
  }
  w.EndArray();
  write_key_money(w, "total", o.total, exponent);
  write_key_text(w, "currency", o.currency);
  write_key_text(w, "created_at", v.created_at);
  write_key_text(w, "updated_at", v.updated_at);
  w.Key("status_history");
  w.StartArray();
  for (const auto& [status, at] : v.history) {
    w.StartObject();
    write_key_text(w, "status", status);
    write_key_text(w, "at", at);
    w.EndObject();
  }
  w.EndArray();
  w.Key("payment");
  if (const Payment* p = latest_payment(v)) {
    w.StartObject();
    write_key_text(w, "payment_id", to_lower(p->state.id));
    write_key_text(w, "status", p->state.status);
    write_key_money(w, "amount", p->state.amount, exponent);
    write_key_text(w, "provider", p->state.provider);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("shipment");
  if (v.shipment) {
    w.StartObject();
    write_key_text(w, "carrier", v.shipment->carrier);
    write_key_text(w, "tracking_number", v.shipment->tracking_number);
    write_key_text(w, "shipped_at", v.shipment->shipped_at);
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
  return out.str();
}

// --- GET /api/cart?as_of= ------------------------------------------------------------------------

// What the read model keeps of a line besides the domain's state: when it was added (its place
// in the list) and the position of the CartItemAdded whose name and price snapshot it shows.
struct LineOrigin {
  std::string added_at;
  std::int64_t snapshot_position = 0;
};

struct CartView {
  domain::CartState cart;
  std::map<std::string, LineOrigin> origins;  // by product id
};

CartView fold_cart(const std::vector<ev::RecordedEvent>& events) {
  CartView v;
  for (const auto& e : events) {
    const ev::Event event = e.decode();
    std::visit(Overloaded{
                   // A new line is added at this time; adding to a line keeps its place but
                   // takes the newer snapshot.
                   [&](const ev::CartItemAdded& a) {
                     auto [it, added] = v.origins.try_emplace(a.product_id);
                     if (added) it->second.added_at = e.occurred_at;
                     it->second.snapshot_position = e.position;
                   },
                   [&](const ev::CartItemRemoved& r) { v.origins.erase(r.product_id); },
                   [&](const ev::CartCheckedOut&) { v.origins.clear(); },
                   [](const auto&) {},
               },
               event);
    v.cart = domain::evolve(std::move(v.cart), event);
  }
  return v;
}

// A product's name and price, with the positions of the events that set them.
struct ProductNaming {
  domain::ProductState state;
  std::int64_t name_position = 0;
  std::int64_t price_position = 0;
};

std::map<std::string, ProductNaming> fold_products(const std::vector<ev::RecordedEvent>& events) {
  std::map<std::string, ProductNaming> out;
  for (const auto& e : events) {
    const ev::Event event = e.decode();
    ProductNaming& p = out[e.stream_id];
    std::visit(
        Overloaded{
            [&](const ev::ProductCreated&) { p.name_position = p.price_position = e.position; },
            [&](const ev::ProductUpdated& u) {
              if (u.name) p.name_position = e.position;
              if (u.price) p.price_position = e.position;
            },
            [](const auto&) {},
        },
        event);
    p.state = domain::evolve(std::move(p.state), event);
  }
  return out;
}

struct Line {
  std::string product_id, name, added_at;
  Minor unit_price = 0;
  std::int64_t quantity = 0;
};

// The lines as the live view lists them: by the time they were added, then by product id. A
// line shows the product's name and price when the event that set them is newer than the line's
// own snapshot (a CartItemAdded), else the snapshot.
std::vector<Line> cart_lines(const CartView& v,
                             const std::map<std::string, ProductNaming>& products) {
  std::vector<Line> lines;
  lines.reserve(v.cart.lines.size());
  for (const auto& l : v.cart.lines) {
    Line line{to_lower(l.product_id), l.name, {}, l.unit_price, l.quantity};
    std::int64_t snapshot = 0;
    if (auto it = v.origins.find(l.product_id); it != v.origins.end()) {
      line.added_at = it->second.added_at;
      snapshot = it->second.snapshot_position;
    }
    if (auto it = products.find(ev::stream("product", line.product_id)); it != products.end()) {
      const ProductNaming& p = it->second;
      if (p.name_position > snapshot) line.name = p.state.name;
      if (p.price_position > snapshot) line.unit_price = p.state.price;
    }
    lines.push_back(std::move(line));
  }
  // Times are all RFC 3339 UTC with six decimals: as text they sort as times.
  std::sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
    return std::tie(a.added_at, a.product_id) < std::tie(b.added_at, b.product_id);
  });
  return lines;
}

// A PostgreSQL text[] literal of the product streams of the cart's lines.
std::string product_streams(const domain::CartState& cart) {
  std::string out = "{";
  for (const auto& l : cart.lines) {
    if (!is_uuid(l.product_id)) continue;  // only ids go into the literal
    if (out.size() > 1) out += ',';
    out += ev::stream("product", to_lower(l.product_id));
  }
  return out + "}";
}

std::string write_cart(const std::vector<Line>& lines, const Context& ctx) {
  Minor total = 0;
  std::int64_t count = 0;
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& l : lines) {
    Minor line_total = 0;
    if (__builtin_mul_overflow(l.unit_price, l.quantity, &line_total)) line_total = 0;
    w.StartObject();
    write_key_text(w, "product_id", l.product_id);
    write_key_text(w, "name", l.name);
    write_key_money(w, "unit_price", l.unit_price, ctx.exponent);
    w.Key("quantity");
    w.Int64(l.quantity);
    write_key_money(w, "line_total", line_total, ctx.exponent);
    w.EndObject();
    total += line_total;
    count += l.quantity;
  }
  w.EndArray();
  write_key_money(w, "total", total, ctx.exponent);
  write_key_text(w, "currency", ctx.options.currency);
  w.Key("item_count");
  w.Int64(count);
  w.EndObject();
  return out.str();
}

}  // namespace

std::optional<AsOf> as_of_param(const http::Request& req) {
  const auto text = text_param(req, "as_of", 64);
  if (!text) return std::nullopt;
  AsOf out;
  if (text->find_first_not_of("0123456789") == std::string::npos) {
    out.position = parse_int64(*text);
    if (!out.position) {
      throw invalid_parameter("as_of",
                              "a position must be an integer from 0 to " +
                                  std::to_string(std::numeric_limits<std::int64_t>::max()));
    }
  } else if (!(out.time = parse_time(*text))) {
    throw invalid_parameter("as_of",
                            "must be an event position (a non-negative integer) or an RFC 3339 "
                            "time with Z or an offset, such as 2026-11-21T20:52:26Z (send '+' "
                            "as %2B)");
  }
  return out;
}

std::string render_order_as_of(Context& ctx, const infra::Principal& caller,
                               const std::string& order_id, const AsOf& as_of) {
  const Bound bound = bound_of(as_of);
  const auto events = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return events_of(run_statement(
        tx, kOrderEvents, {ev::stream("order", order_id), order_id, bound.position, bound.time}));
  });
  const OrderView view = fold_order(events);
  // An order that did not exist yet, or someone else's, does not exist for the caller.
  const bool staff = caller.has_role("admin") || caller.has_role("staff");
  if (!view.order.exists || (to_lower(view.order.user_id) != to_lower(caller.user_id) && !staff)) {
    throw not_found("order");
  }
  return write_order(view);
}

std::string render_cart_as_of(Context& ctx, const std::string& user_id, const AsOf& as_of) {
  const Bound bound = bound_of(as_of);
  auto [cart, products] = ctx.db.run([&](pqxx::connection& c) {
    // One snapshot for both reads: the products' events are those of the same moment.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    CartView v = fold_cart(events_of(
        run_statement(tx, kCartEvents, {ev::stream("cart", user_id), bound.position, bound.time})));
    std::map<std::string, ProductNaming> p;
    if (!v.cart.lines.empty()) {
      p = fold_products(events_of(run_statement(
          tx, kProductEvents, {product_streams(v.cart), bound.position, bound.time})));
    }
    tx.commit();
    return std::make_pair(std::move(v), std::move(p));
  });
  return write_cart(cart_lines(cart, products), ctx);
}

}  // namespace shop::query
