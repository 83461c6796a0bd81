// What a signed-in customer sees of their own: cart, orders; and every order for staff. (Profiles:
// users.cpp.)
// Read straight from the tables (never cached): they are per user and change with every command.
#include <algorithm>
#include <pqxx/pqxx>

#include "as_of.h"
#include "context.h"
#include "handlers.h"
#include "params.h"
#include "shop/infra/log.h"

namespace shop::query {

namespace {

const Statement kCart{"q_cart", R"SQL(
SELECT product_id::text, name, unit_price, quantity
  FROM rm_cart_items
 WHERE user_id = $1::uuid
 ORDER BY added_at, product_id)SQL"};

const Statement kOrder{"q_order", "SELECT o.id::text, o.order_number, o.user_id::text, o.status, "
                                  "o.total, o.currency, o.items::text, o.status_history::text, "
                                  "o.payment::text, o.shipment::text, " +
                                      utc_text("o.created_at") + ", " + utc_text("o.updated_at") +
                                      " FROM rm_orders o WHERE o.id = $1::uuid"};
enum OrderColumn {
  kOrderId,
  kOrderNumber,
  kUserId,
  kStatus,
  kTotal,
  kCurrency,
  kItems,
  kHistory,
  kPayment,
  kShipment,
  kCreatedAt,
  kUpdatedAt
};

// An order in a list. item_count is the number of units (the sum of the quantities).
const std::string kSummaryColumns =
    "o.id::text, o.order_number, o.status, o.total, o.currency, " + utc_text("o.created_at") +
    ", (SELECT COALESCE(sum(CASE WHEN jsonb_typeof(i->'quantity') = 'number'"
    " THEN (i->>'quantity')::numeric ELSE 0 END), 0)"
    "     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(o.items) = 'array' THEN o.items"
    " ELSE '[]'::jsonb END) i)::bigint, o.user_id::text";
enum SummaryColumn { kSumId, kSumNumber, kSumStatus, kSumTotal, kSumCurrency, kSumCreatedAt,
                     kSumItemCount, kSumUserId };

bool is_staff(const infra::Principal& p) { return p.has_role("admin") || p.has_role("staff"); }

// --- money inside the projector's jsonb values ---------------------------------------------------

void write_member_text(json::Writer& w, const json::Value& object, const char* name) {
  w.Key(name);
  const json::Value* v = json::member(object, name);
  if (v && v->IsString()) {
    w.String(v->GetString(), v->GetStringLength());
  } else {
    w.Null();
  }
}

void write_member_int(json::Writer& w, const json::Value& object, const char* name) {
  w.Key(name);
  const json::Value* v = json::member(object, name);
  if (v && v->IsInt64()) {
    w.Int64(v->GetInt64());
  } else {
    w.Null();
  }
}

void write_member_money(json::Writer& w, const json::Value& object, const char* name,
                        int exponent) {
  w.Key(name);
  const json::Value* v = json::member(object, name);
  if (v && v->IsInt64()) {
    w.String(format_money(v->GetInt64(), exponent));
  } else {
    w.Null();
  }
}

// Parses a jsonb column's text; a NULL column or unreadable text gives a Null value.
void parse_column(const pqxx::field& f, json::Document& doc) {
  if (f.is_null()) {
    doc.SetNull();
    return;
  }
  if (auto error = json::parse(std::string_view(f.c_str(), f.size()), doc); !error.empty()) {
    log::error("unreadable jsonb in column {}: {}", f.name(), error);
    doc.SetNull();
  }
}

// Writes a cart line and returns its total.
Minor write_line(json::Writer& w, const std::string& product_id, std::string_view name,
                 Minor unit_price, std::int64_t quantity, int exponent) {
  Minor line_total = 0;
  if (__builtin_mul_overflow(unit_price, quantity, &line_total)) line_total = 0;
  w.StartObject();
  w.Key("product_id");
  w.String(product_id);
  w.Key("name");
  write_text(w, name);
  w.Key("unit_price");
  w.String(format_money(unit_price, exponent));
  w.Key("quantity");
  w.Int64(quantity);
  w.Key("line_total");
  w.String(format_money(line_total, exponent));
  w.EndObject();
  return line_total;
}

// --- GET /api/cart -------------------------------------------------------------------------------

std::string render_cart(Context& ctx, const std::string& user_id) {
  auto rows = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, kCart, {user_id});
  });
  Minor total = 0;
  std::int64_t count = 0;
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& r : rows) {
    const auto quantity = r[3].as<std::int64_t>();
    total += write_line(w, r[0].c_str(), std::string_view(r[1].c_str(), r[1].size()),
                        r[2].as<Minor>(), quantity, ctx.exponent);
    count += quantity;
  }
  w.EndArray();
  w.Key("total");
  w.String(format_money(total, ctx.exponent));
  w.Key("currency");
  w.String(ctx.options.currency);
  w.Key("item_count");
  w.Int64(count);
  w.EndObject();
  return out.str();
}

// --- GET /api/orders/{id} ------------------------------------------------------------------------

void write_order_items(json::Writer& w, const json::Value& items, int exponent) {
  w.Key("items");
  w.StartArray();
  if (items.IsArray()) {
    for (const auto& item : items.GetArray()) {
      w.StartObject();
      write_member_text(w, item, "product_id");
      write_member_text(w, item, "name");
      write_member_money(w, item, "unit_price", exponent);
      write_member_int(w, item, "quantity");
      write_member_money(w, item, "line_total", exponent);
      w.EndObject();
    }
  }
  w.EndArray();
}

void write_status_history(json::Writer& w, const json::Value& history) {
  w.Key("status_history");
  w.StartArray();
  if (history.IsArray()) {
    for (const auto& entry : history.GetArray()) {
      w.StartObject();
      write_member_text(w, entry, "status");
      write_member_text(w, entry, "at");
      w.EndObject();
    }
  }
  w.EndArray();
}

void write_payment(json::Writer& w, const json::Value& payment, int exponent) {
  w.Key("payment");
  if (!payment.IsObject()) {
    w.Null();
    return;
  }
  w.StartObject();
  write_member_text(w, payment, "payment_id");
  write_member_text(w, payment, "status");
  write_member_money(w, payment, "amount", exponent);
  write_member_text(w, payment, "provider");
  w.EndObject();
}

void write_shipment(json::Writer& w, const json::Value& shipment) {
  w.Key("shipment");
  if (!shipment.IsObject()) {
    w.Null();
    return;
  }
  w.StartObject();
  write_member_text(w, shipment, "carrier");
  write_member_text(w, shipment, "tracking_number");
  write_member_text(w, shipment, "shipped_at");
  w.EndObject();
}

std::string render_order(Context& ctx, const infra::Principal& caller,
                         const std::string& order_id) {
  auto rows = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, kOrder, {order_id});
  });
  // Someone else's order does not exist, as far as the caller can tell.
  if (rows.empty() || (rows[0][kUserId].c_str() != to_lower(caller.user_id) && !is_staff(caller))) {
    throw not_found("order");
  }
  const auto r = rows[0];
  const int exponent = currency_exponent(r[kCurrency].c_str());
  json::Document items, history, payment, shipment;
  parse_column(r[kItems], items);
  parse_column(r[kHistory], history);
  parse_column(r[kPayment], payment);
  parse_column(r[kShipment], shipment);

  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("order_id");
  write_field(w, r[kOrderId]);
  w.Key("order_number");
  write_field(w, r[kOrderNumber]);
  w.Key("user_id");
  write_field(w, r[kUserId]);
  w.Key("status");
  write_field(w, r[kStatus]);
  write_order_items(w, items, exponent);
  w.Key("total");
  w.String(format_money(r[kTotal].as<Minor>(), exponent));
  w.Key("currency");
  write_field(w, r[kCurrency]);
  w.Key("created_at");
  write_field(w, r[kCreatedAt]);
  w.Key("updated_at");
  write_field(w, r[kUpdatedAt]);
  write_status_history(w, history);
  write_payment(w, payment, exponent);
  write_shipment(w, shipment);
  w.EndObject();
  return out.str();
}

// --- GET /api/orders and /api/admin/orders -------------------------------------------------------

struct OrderListQuery {
  bool all_users = false;
  std::optional<std::string> user_id;
  std::optional<std::string> status;
  int limit = 20;
  std::optional<CursorPosition> after;
};

const char* cursor_scope(const OrderListQuery& q) {
  return q.all_users ? "admin_orders:-created_at" : "orders:-created_at";
}

OrderListQuery parse_order_list_query(const http::Request& req, const Context& ctx,
                                      bool all_users) {
  OrderListQuery q;
  q.all_users = all_users;
  q.limit = limit_param(req);
  if (all_users) {
    if ((q.status = text_param(req, "status", 64))) {
      if (q.status->find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos) {
        throw invalid_parameter("status", "must be an order status such as placed or paid");
      }
    }
  }
  if (auto it = req.query.find("cursor"); it != req.query.end() && !it->second.empty()) {
    auto position = ctx.cursors.decode(cursor_scope(q), it->second);
    auto at = position ? parse_time(position->key) : std::nullopt;
    if (!at || !is_uuid(position->id)) throw invalid_cursor();
    position->key = format_time(*at);
    q.after = std::move(position);
  }
  return q;
}

// Newest first; keyset on (created_at, id), which the rm_orders indexes follow.
Statement order_list_statement(const OrderListQuery& q, std::vector<std::string>& params) {
  std::string name = q.user_id ? "q_orders_user_" : "q_orders_all_";
  std::string where = " WHERE true";
  auto param = [&](std::string value, const char* type) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size()) + "::" + type;
  };
  if (q.user_id) where += " AND o.user_id = " + param(*q.user_id, "uuid");
  if (q.status) {
    name += 's';
    where += " AND o.status = " + param(*q.status, "text");
  }
  if (q.after) {
    name += 'a';
    const auto key = param(q.after->key, "timestamptz");
    where += " AND (o.created_at, o.id) < (" + key + ", " + param(q.after->id, "uuid") + ")";
  }
  const auto limit = param(std::to_string(q.limit + 1), "int");
  return {std::move(name), "SELECT " + kSummaryColumns + " FROM rm_orders o" + where +
                               " ORDER BY o.created_at DESC, o.id DESC LIMIT " + limit};
}

std::string render_order_list(Context& ctx, const OrderListQuery& q) {
  std::vector<std::string> params;
  const Statement statement = order_list_statement(q, params);
  auto rows = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, statement, params);
  });
  const auto count = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(q.limit));
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (std::size_t i = 0; i < count; ++i) {
    const auto r = rows[i];
    const int exponent = currency_exponent(r[kSumCurrency].c_str());
    w.StartObject();
    w.Key("order_id");
    write_field(w, r[kSumId]);
    w.Key("order_number");
    write_field(w, r[kSumNumber]);
    w.Key("status");
    write_field(w, r[kSumStatus]);
    w.Key("total");
    w.String(format_money(r[kSumTotal].as<Minor>(), exponent));
    w.Key("currency");
    write_field(w, r[kSumCurrency]);
    w.Key("created_at");
    write_field(w, r[kSumCreatedAt]);
    w.Key("item_count");
    w.Int64(r[kSumItemCount].as<std::int64_t>());
    if (q.all_users) {
      w.Key("user_id");
      write_field(w, r[kSumUserId]);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("next_cursor");
  if (rows.size() > count) {
    const auto last = rows[count - 1];
    w.String(ctx.cursors.encode(cursor_scope(q),
                                {last[kSumCreatedAt].c_str(), last[kSumId].c_str()}));
  } else {
    w.Null();
  }
  w.EndObject();
  return out.str();
}

// Signed-in responses are the caller's own: no shared caches on the way.
http::Response private_response(http::Response res) {
  return std::move(res.with_header("Cache-Control", "private, no-store"));
}

}  // namespace

void add_account_routes(http::Router& router, Context& ctx) {
  router.add("GET", "/api/cart", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    const auto user_id = to_lower(caller.user_id);
    // As of an earlier moment: folded from the event store, so no read model to wait for.
    if (const auto as_of = as_of_param(req)) {
      return private_response(http::json(200, render_cart_as_of(ctx, user_id, *as_of)));
    }
    return private_response(ctx.read(req, nullptr, [&] { return render_cart(ctx, user_id); }));
  });
  router.add("GET", "/api/orders", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    auto q = parse_order_list_query(req, ctx, false);
    q.user_id = to_lower(caller.user_id);
    return private_response(ctx.read(req, nullptr, [&] { return render_order_list(ctx, q); }));
  });
  router.add("GET", "/api/orders/{id}", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    const auto as_of = as_of_param(req);
    const std::string& id = req.params.at("id");
    if (!is_uuid(id)) throw not_found("order");
    const auto order_id = to_lower(id);
    if (as_of) {
      return private_response(http::json(200, render_order_as_of(ctx, caller, order_id, *as_of)));
    }
    return private_response(
        ctx.read(req, nullptr, [&] { return render_order(ctx, caller, order_id); }));
  });
  router.add("GET", "/api/admin/orders", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    infra::Authenticator::require_role(caller, {"admin", "staff"});
    const auto q = parse_order_list_query(req, ctx, true);
    return private_response(ctx.read(req, nullptr, [&] { return render_order_list(ctx, q); }));
  });
}

}  // namespace shop::query
