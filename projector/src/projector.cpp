#include "shop/projector/projector.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "shop/events/events.h"
#include "shop/infra/log.h"

namespace shop::projector {

namespace ev = shop::events;

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// The order's latest payment attempt (the greatest initiated position) as the order view shows
// it. $1 is the order id.
#define SHOP_LATEST_PAYMENT                                                                     \
  "(SELECT jsonb_build_object('payment_id', p.payment_id::text, 'status', p.status, 'amount', " \
  "p.amount, 'provider', p.provider) FROM rm_payments p WHERE p.order_id = $1::uuid "           \
  "ORDER BY p.initiated_position DESC LIMIT 1)"

// Read-model statements, prepared once per connection. Every handler that writes a value that
// events of two streams can set keeps the position of the event that set it, and only a greater
// position replaces it: the rows are the same whatever the interleaving of the streams.
const std::pair<const char*, const char*> kStatements[] = {
    // Takes the advisory locks of the given keys (stream ids; $2: exclusive, else shared), in
    // the order of their hashes, so that two transactions never wait for each other in a cycle.
    {"rm_lock", R"SQL(
SELECT CASE WHEN x THEN pg_advisory_xact_lock(4, k) ELSE pg_advisory_xact_lock_shared(4, k) END
  FROM (SELECT hashtext(key) AS k, bool_or(exclusive) AS x
          FROM unnest($1::text[], $2::boolean[]) AS u(key, exclusive)
         GROUP BY 1 ORDER BY 1) s)SQL"},
    {"rm_user_registered", R"SQL(
INSERT INTO rm_users (id, email, name, roles, created_at)
VALUES ($1, $2, $3, (SELECT coalesce(array_agg(r), '{}') FROM jsonb_array_elements_text($4::jsonb) r), $5)
ON CONFLICT (id) DO NOTHING)SQL"},
    // A user's events are all of their own stream, so they arrive in order: the last one wins.
    // $4: the number was removed ($3 is then null).
    {"rm_user_profile", R"SQL(
UPDATE rm_users SET name = coalesce($2::text, name),
  phone = CASE WHEN $4::boolean THEN NULL ELSE coalesce($3::text, phone) END
WHERE id = $1)SQL"},
    {"rm_user_roles", R"SQL(
UPDATE rm_users SET roles = (SELECT coalesce(array_agg(r), '{}') FROM jsonb_array_elements_text($2::jsonb) r)
WHERE id = $1)SQL"},
    // A session's events are all of its own stream, so they arrive in order.
    {"rm_session_started", R"SQL(
INSERT INTO rm_sessions (id, user_id, started_at, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_session_rotated", R"SQL(
UPDATE rm_sessions SET refreshed_at = $2, refresh_count = refresh_count + 1, expires_at = $3
 WHERE id = $1)SQL"},
    {"rm_session_revoked", R"SQL(
UPDATE rm_sessions SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL)SQL"},
    {"rm_category_created", R"SQL(
INSERT INTO rm_categories (id, name, parent_id, created_at) VALUES ($1, $2, NULLIF($3, '')::uuid, $4)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_product_created", R"SQL(
INSERT INTO rm_products (id, name, description, sku, category_id, price, stock, created_at, updated_at,
                         name_position, price_position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $9)
ON CONFLICT (id) DO NOTHING)SQL"},
    // A product's own events arrive in order: the last one wins. The positions are kept for the
    // cart lines (below).
    {"rm_product_updated", R"SQL(
UPDATE rm_products SET
  name = coalesce($2::text, name), description = coalesce($3::text, description),
  sku = coalesce($4::text, sku), category_id = coalesce($5::uuid, category_id),
  price = coalesce($6::bigint, price), updated_at = $7,
  name_position = CASE WHEN $2::text IS NULL THEN name_position ELSE $8::bigint END,
  price_position = CASE WHEN $6::bigint IS NULL THEN price_position ELSE $8::bigint END
WHERE id = $1)SQL"},
    // Cart lines show the product's current name and price (the price checkout will take) unless
    // the line was added after this change (its snapshot is newer).
    {"rm_cart_product_updated", R"SQL(
UPDATE rm_cart_items SET
  name = CASE WHEN $2::text IS NOT NULL AND name_position < $4::bigint THEN $2::text ELSE name END,
  name_position = CASE WHEN $2::text IS NOT NULL AND name_position < $4::bigint THEN $4::bigint
                       ELSE name_position END,
  unit_price = CASE WHEN $3::bigint IS NOT NULL AND price_position < $4::bigint THEN $3::bigint
                    ELSE unit_price END,
  price_position = CASE WHEN $3::bigint IS NOT NULL AND price_position < $4::bigint THEN $4::bigint
                        ELSE price_position END
WHERE product_id = $1
  AND (($2::text IS NOT NULL AND name_position < $4::bigint)
       OR ($3::bigint IS NOT NULL AND price_position < $4::bigint)))SQL"},
    {"rm_product_discontinued",
     "UPDATE rm_products SET discontinued = true, updated_at = $2 WHERE id = $1"},
    {"rm_product_stock", "UPDATE rm_products SET stock = $2, updated_at = $3 WHERE id = $1"},
    // The line's name and price: the event's snapshot, unless the product has already been
    // changed by an event with a greater position (applied before this one arrived).
    {"rm_cart_item_added", R"SQL(
INSERT INTO rm_cart_items AS c (user_id, product_id, name, unit_price, quantity, added_at,
                                name_position, price_position)
SELECT $1::uuid, $2::uuid,
       CASE WHEN p.name_position > $7::bigint THEN p.name ELSE $3::text END,
       CASE WHEN p.price_position > $7::bigint THEN p.price ELSE $4::bigint END,
       $5::bigint, $6::timestamptz,
       GREATEST($7::bigint, p.name_position), GREATEST($7::bigint, p.price_position)
  FROM (SELECT 1) one LEFT JOIN rm_products p ON p.id = $2::uuid
ON CONFLICT (user_id, product_id) DO UPDATE SET
  name = CASE WHEN c.name_position > EXCLUDED.name_position THEN c.name ELSE EXCLUDED.name END,
  name_position = GREATEST(c.name_position, EXCLUDED.name_position),
  unit_price = CASE WHEN c.price_position > EXCLUDED.price_position THEN c.unit_price
                    ELSE EXCLUDED.unit_price END,
  price_position = GREATEST(c.price_position, EXCLUDED.price_position),
  quantity = EXCLUDED.quantity)SQL"},
    {"rm_cart_item_quantity",
     "UPDATE rm_cart_items SET quantity = $3 WHERE user_id = $1 AND product_id = $2"},
    {"rm_cart_item_removed", "DELETE FROM rm_cart_items WHERE user_id = $1 AND product_id = $2"},
    {"rm_cart_checked_out", "DELETE FROM rm_cart_items WHERE user_id = $1"},
    // Payments of the order that arrived first are taken into the new row.
    {"rm_order_placed", R"SQL(
INSERT INTO rm_orders (id, order_number, user_id, status, total, currency, items, status_history,
                       payment, created_at, updated_at, updated_position)
SELECT $1::uuid, $2::text, $3::uuid, 'pending', $4::bigint, $5::text, $6::jsonb,
       jsonb_build_array(jsonb_build_object('status', 'pending', 'at', $7::text)),
       )SQL" SHOP_LATEST_PAYMENT R"SQL(,
       $8::timestamptz,
       CASE WHEN lp.updated_position > $9::bigint THEN lp.updated_at ELSE $8::timestamptz END,
       GREATEST($9::bigint, lp.updated_position)
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (SELECT updated_at, updated_position FROM rm_payments
                      WHERE order_id = $1::uuid ORDER BY updated_position DESC LIMIT 1) lp ON true
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_order_status", R"SQL(
UPDATE rm_orders SET status = $2,
  status_history = status_history || jsonb_build_array(jsonb_build_object('status', $2::text, 'at', $3::text)),
  updated_at = CASE WHEN updated_position < $5::bigint THEN $4::timestamptz ELSE updated_at END,
  updated_position = GREATEST(updated_position, $5::bigint)
WHERE id = $1)SQL"},
    {"rm_order_shipment", R"SQL(
UPDATE rm_orders SET shipment = jsonb_build_object('carrier', $2::text, 'tracking_number', $3::text,
                                                   'shipped_at', $4::text)
WHERE id = $1)SQL"},
    {"rm_payment_initiated", R"SQL(
INSERT INTO rm_payments (payment_id, order_id, user_id, status, amount, currency, provider,
                         initiated_position, updated_position, created_at, updated_at)
VALUES ($1, $2, $3, 'initiated', $5, $6, $4, $8, $8, $7, $7)
ON CONFLICT (payment_id) DO NOTHING)SQL"},
    {"rm_payment_status", R"SQL(
UPDATE rm_payments SET status = $2, updated_at = $3, updated_position = $4
WHERE payment_id = $1 AND updated_position < $4::bigint)SQL"},
    // The order's copy of its latest payment, after a payment event (nothing while the order
    // has not arrived: OrderPlaced takes it then).
    {"rm_order_payment", R"SQL(
UPDATE rm_orders o SET payment = )SQL" SHOP_LATEST_PAYMENT R"SQL(,
  updated_at = CASE WHEN o.updated_position < $3::bigint THEN $2::timestamptz ELSE o.updated_at END,
  updated_position = GREATEST(o.updated_position, $3::bigint)
WHERE o.id = $1::uuid)SQL"},
    // One projector reading the store at a time per database: a second process (or the backend
    // of a killed one still finishing its last commit) waits here instead of applying the same
    // batch twice. An advisory lock takes no transaction id, so it does not hold back the
    // reader's horizon.
    {"rm_projector_lock", "SELECT pg_advisory_xact_lock(2, hashtext('read_models'))"},
    // Projectors reading Kafka (several at once) take it shared.
    {"rm_projector_lock_shared", "SELECT pg_advisory_xact_lock_shared(2, hashtext('read_models'))"},
    // The live version's schema first on the search path (then public, where the events are),
    // for the transaction ($2 false) or the session ($2 true).
    {"rm_use_live", R"SQL(
SELECT set_config('search_path', quote_ident(schema_prefix || live_version) || ', public', NOT $2),
       schema_prefix || live_version
  FROM public.projections WHERE name = $1)SQL"},
    {"rm_checkpoint_load",
     "SELECT last_tx::text, last_position FROM rm_checkpoints WHERE name = $1"},
    {"rm_checkpoint_save", R"SQL(
INSERT INTO rm_checkpoints (name, last_tx, last_position, max_position, updated_at)
VALUES ($1, $2::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, last_position = EXCLUDED.last_position,
  max_position = GREATEST(rm_checkpoints.max_position, EXCLUDED.max_position), updated_at = now())SQL"},
    {"rm_kafka_group", "SELECT consumer_group FROM rm_kafka_offsets LIMIT 1"},
};

#undef SHOP_LATEST_PAYMENT

std::optional<std::string> opt(const std::optional<std::string>& v) {
  return v;
}

std::string lines_json(const std::vector<ev::OrderLine>& lines) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  codec::write(w, lines);
  return {buf.GetString(), buf.GetSize()};
}

std::string roles_json(const std::vector<std::string>& roles) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  codec::write(w, roles);
  return {buf.GetString(), buf.GetSize()};
}

// The rows an event writes that events of another stream write too, named by the stream id of
// their owner, with the lock mode (true: exclusive): an order's row (its own events and its
// payments' write it) and a product's cart lines (its name and price changes rewrite them, a
// CartItemAdded reads the product to write one; two of those do not conflict).
using LockKeys = std::map<std::string, bool>;

void add_lock_keys(const ev::Event& event, LockKeys& keys) {
  auto exclusive = [&](std::string key) { keys[std::move(key)] = true; };
  auto order = [&](const std::string& id) { exclusive(ev::stream("order", id)); };
  std::visit(Overloaded{
                 [&](const ev::ProductUpdated& x) {
                   if (x.name || x.price) exclusive(ev::stream("product", x.product_id));
                 },
                 [&](const ev::CartItemAdded& x) {
                   keys.try_emplace(ev::stream("product", x.product_id), false);
                 },
                 [&](const ev::OrderPlaced& x) { order(x.order_id); },
                 [&](const ev::OrderCancelled& x) { order(x.order_id); },
                 [&](const ev::OrderPaid& x) { order(x.order_id); },
                 [&](const ev::OrderShipped& x) { order(x.order_id); },
                 [&](const ev::OrderDelivered& x) { order(x.order_id); },
                 [&](const ev::PaymentInitiated& x) { order(x.order_id); },
                 [&](const ev::PaymentCaptured& x) { order(x.order_id); },
                 [&](const ev::PaymentFailed& x) { order(x.order_id); },
                 [](const auto&) {},
             },
             event);
}

// PostgreSQL array literals of the keys (stream ids: letters, digits and '-') and their modes.
std::pair<std::string, std::string> array_literals(const LockKeys& keys) {
  std::string names = "{", modes = "{";
  for (const auto& [k, exclusive] : keys) {
    if (names.size() > 1) {
      names += ',';
      modes += ',';
    }
    names += '"';
    for (char c : k) {
      if (c == '"' || c == '\\') names += '\\';
      names += c;
    }
    names += '"';
    modes += exclusive ? 't' : 'f';
  }
  return {names + '}', modes + '}'};
}

void apply_decoded(pqxx::transaction_base& tx, const events::RecordedEvent& e,
                   const ev::Event& event) {
  const std::string& at = e.occurred_at;
  const std::int64_t pos = e.position;
  auto status = [&](const std::string& order_id, const char* s) {
    tx.exec_prepared("rm_order_status", order_id, s, at, at, pos);
  };
  std::visit(
      Overloaded{
          [&](const ev::UserRegistered& x) {
            tx.exec_prepared("rm_user_registered", x.user_id, x.email, x.name, roles_json(x.roles),
                             at);
          },
          [&](const ev::UserProfileChanged& x) {
            tx.exec_prepared("rm_user_profile", x.user_id, opt(x.name), opt(x.phone),
                             x.phone_removed);
          },
          [&](const ev::UserPasswordChanged&) {},  // nothing of it is shown
          [&](const ev::UserRolesChanged& x) {
            tx.exec_prepared("rm_user_roles", x.user_id, roles_json(x.roles));
          },
          [&](const ev::SessionStarted& x) {
            tx.exec_prepared("rm_session_started", x.session_id, x.user_id, at, x.expires_at);
          },
          [&](const ev::RefreshTokenRotated& x) {
            tx.exec_prepared("rm_session_rotated", x.session_id, at, x.expires_at);
          },
          [&](const ev::SessionRevoked& x) {
            tx.exec_prepared("rm_session_revoked", x.session_id, at, x.reason);
          },
          [&](const ev::CategoryCreated& x) {
            tx.exec_prepared("rm_category_created", x.category_id, x.name, x.parent_id.value_or(""),
                             at);
          },
          [&](const ev::ProductCreated& x) {
            tx.exec_prepared("rm_product_created", x.product_id, x.name, x.description, x.sku,
                             x.category_id, x.price, x.stock, at, pos);
          },
          [&](const ev::ProductUpdated& x) {
            tx.exec_prepared("rm_product_updated", x.product_id, opt(x.name), opt(x.description),
                             opt(x.sku), opt(x.category_id), x.price, at, pos);
            if (x.name || x.price) {
              tx.exec_prepared("rm_cart_product_updated", x.product_id, opt(x.name), x.price, pos);
            }
          },
          [&](const ev::ProductDiscontinued& x) {
            tx.exec_prepared("rm_product_discontinued", x.product_id, at);
          },
          [&](const ev::StockAdjusted& x) {
            tx.exec_prepared("rm_product_stock", x.product_id, x.stock_after, at);
          },
          [&](const ev::StockReserved& x) {
            tx.exec_prepared("rm_product_stock", x.product_id, x.stock_after, at);
          },
          [&](const ev::StockReleased& x) {
            tx.exec_prepared("rm_product_stock", x.product_id, x.stock_after, at);
          },
          [&](const ev::CartItemAdded& x) {
            tx.exec_prepared("rm_cart_item_added", x.user_id, x.product_id, x.name, x.unit_price,
                             x.line_quantity, at, pos);
          },
          [&](const ev::CartItemQuantityChanged& x) {
            tx.exec_prepared("rm_cart_item_quantity", x.user_id, x.product_id, x.quantity);
          },
          [&](const ev::CartItemRemoved& x) {
            tx.exec_prepared("rm_cart_item_removed", x.user_id, x.product_id);
          },
          [&](const ev::CartCheckedOut& x) { tx.exec_prepared("rm_cart_checked_out", x.user_id); },
          [&](const ev::OrderPlaced& x) {
            tx.exec_prepared("rm_order_placed", x.order_id, x.order_number, x.user_id, x.total,
                             x.currency, lines_json(x.lines), at, at, pos);
          },
          [&](const ev::OrderCancelled& x) { status(x.order_id, "cancelled"); },
          [&](const ev::OrderPaid& x) { status(x.order_id, "paid"); },
          [&](const ev::OrderShipped& x) {
            status(x.order_id, "shipped");
            tx.exec_prepared("rm_order_shipment", x.order_id, x.carrier, x.tracking_number, at);
          },
          [&](const ev::OrderDelivered& x) { status(x.order_id, "delivered"); },
          [&](const ev::PaymentInitiated& x) {
            tx.exec_prepared("rm_payment_initiated", x.payment_id, x.order_id, x.user_id,
                             x.provider, x.amount, x.currency, at, pos);
            tx.exec_prepared("rm_order_payment", x.order_id, at, pos);
          },
          [&](const ev::PaymentCaptured& x) {
            tx.exec_prepared("rm_payment_status", x.payment_id, "captured", at, pos);
            tx.exec_prepared("rm_order_payment", x.order_id, at, pos);
          },
          [&](const ev::PaymentFailed& x) {
            tx.exec_prepared("rm_payment_status", x.payment_id, "failed", at, pos);
            tx.exec_prepared("rm_order_payment", x.order_id, at, pos);
          },
      },
      event);
}

}  // namespace

void prepare_statements(pqxx::connection_base& c) {
  for (const auto& [name, sql] : kStatements) c.prepare(name, sql);
}

std::string use_live_version(pqxx::transaction_base& tx, bool session) {
  auto r = tx.exec_prepared("rm_use_live", kCheckpointName, session);
  if (r.empty()) {
    throw std::runtime_error(std::string("the projection ") + kCheckpointName +
                             " is not registered (are the migrations applied?)");
  }
  return r[0][1].c_str();
}

void lock_live_version(pqxx::transaction_base& tx, const std::string& schema) {
  tx.exec_prepared("rm_projector_lock_shared");
  const auto r = tx.exec_prepared("rm_use_live", kCheckpointName, false);
  if (r.empty() || r[0][1].c_str() != schema) {
    throw VersionSwitched("the read models now live in " +
                          (r.empty() ? std::string("no schema") : std::string(r[0][1].c_str())) +
                          ", not " + schema + " (rebuilt)");
  }
}

void apply_batch(pqxx::transaction_base& tx, const std::vector<events::RecordedEvent>& events) {
  std::vector<ev::Event> decoded;
  decoded.reserve(events.size());
  LockKeys keys;
  for (const auto& e : events) {
    decoded.push_back(e.decode());
    add_lock_keys(decoded.back(), keys);
  }
  if (!keys.empty()) {
    const auto [names, modes] = array_literals(keys);
    tx.exec_prepared("rm_lock", names, modes);
  }
  for (std::size_t i = 0; i < events.size(); ++i) apply_decoded(tx, events[i], decoded[i]);
}

void apply(pqxx::transaction_base& tx, const events::RecordedEvent& e) {
  prepare_statements(tx.conn());  // a no-op for statements already prepared the same way
  apply_batch(tx, {e});
}

struct Projector::Impl {
  std::string url;
  Options options;
  std::unique_ptr<pqxx::connection> conn;

  pqxx::connection& connection() {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(url);
      pqxx::nontransaction(*conn).exec("SET TIME ZONE 'UTC'");
      prepare_statements(*conn);
    }
    return *conn;
  }

  // Read models maintained from Kafka keep their places per partition, not in the store's
  // global order: continuing them from here would apply events twice or skip them. Checked with
  // every batch (a projector reading Kafka may have been started since).
  static void check_source(pqxx::transaction_base& tx) {
    auto r = tx.exec_prepared("rm_kafka_group");
    if (!r.empty()) {
      throw WrongSource(
          std::string("the read models in this database are projected from Kafka (consumer "
                      "group ") +
          r[0][0].c_str() +
          "); set KAFKA_BROKERS, or rebuild them from the store (see projector/README.md)");
    }
  }
};

Projector::Projector(std::string database_url, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->url = std::move(database_url);
  impl_->options = options;
}
Projector::~Projector() = default;

infra::GlobalCheckpoint Projector::checkpoint() {
  pqxx::work tx(impl_->connection());
  use_live_version(tx);
  auto r = tx.exec_prepared("rm_checkpoint_load", kCheckpointName);
  infra::GlobalCheckpoint cp;
  if (!r.empty()) {
    cp.tx = r[0][0].c_str();
    cp.position = r[0][1].as<std::int64_t>();
  }
  return cp;
}

int Projector::run_once() {
  pqxx::work tx(impl_->connection());
  tx.exec_prepared("rm_projector_lock");
  // Under the lock: a rebuild switches versions holding it, so this one stays live until commit.
  use_live_version(tx);
  Impl::check_source(tx);
  // Read first, while this transaction has written nothing (it has no transaction id yet, so it
  // does not hold back its own snapshot's horizon).
  auto r = tx.exec_prepared("rm_checkpoint_load", kCheckpointName);
  infra::GlobalCheckpoint cp;
  if (!r.empty()) {
    cp.tx = r[0][0].c_str();
    cp.position = r[0][1].as<std::int64_t>();
  }
  auto batch = infra::read_global(tx, cp, impl_->options.batch_size);
  if (batch.events.empty()) return 0;
  std::int64_t max_position = 0;
  for (const auto& e : batch.events) max_position = std::max(max_position, e.position);
  apply_batch(tx, batch.events);
  tx.exec_prepared("rm_checkpoint_save", kCheckpointName, batch.next.tx, batch.next.position,
                   max_position);
  tx.commit();
  return static_cast<int>(batch.events.size());
}

void Projector::run(const std::atomic<bool>& stop) {
  int backoff_ms = 100;
  while (!stop.load()) {
    try {
      const int n = run_once();
      backoff_ms = 100;
      if (n == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(impl_->options.idle_poll_ms));
    } catch (const WrongSource&) {
      throw;
    } catch (const std::exception& e) {
      log::error("projection failed, retrying in {} ms: {}", backoff_ms, e.what());
      impl_->conn.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
  }
}

}  // namespace shop::projector
