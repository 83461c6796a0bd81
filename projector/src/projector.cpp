#include "shop/projector/projector.h"

#include <chrono>
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

// Read-model statements, prepared once per connection.
const std::pair<const char*, const char*> kStatements[] = {
    {"rm_user_registered", R"SQL(
INSERT INTO rm_users (id, email, name, roles, created_at)
VALUES ($1, $2, $3, (SELECT coalesce(array_agg(r), '{}') FROM jsonb_array_elements_text($4::jsonb) r), $5)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_category_created", R"SQL(
INSERT INTO rm_categories (id, name, parent_id, created_at) VALUES ($1, $2, NULLIF($3, '')::uuid, $4)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_product_created", R"SQL(
INSERT INTO rm_products (id, name, description, sku, category_id, price, stock, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_product_updated", R"SQL(
UPDATE rm_products SET
  name = coalesce($2, name), description = coalesce($3, description), sku = coalesce($4, sku),
  category_id = coalesce($5::uuid, category_id), price = coalesce($6::bigint, price), updated_at = $7
WHERE id = $1)SQL"},
    // Cart lines show the product's current name and price: it is the price checkout will take.
    {"rm_cart_product_updated", R"SQL(
UPDATE rm_cart_items SET name = coalesce($2, name), unit_price = coalesce($3::bigint, unit_price)
WHERE product_id = $1 AND ($2::text IS NOT NULL OR $3::bigint IS NOT NULL))SQL"},
    {"rm_product_discontinued",
     "UPDATE rm_products SET discontinued = true, updated_at = $2 WHERE id = $1"},
    {"rm_product_stock", "UPDATE rm_products SET stock = $2, updated_at = $3 WHERE id = $1"},
    {"rm_cart_item_added", R"SQL(
INSERT INTO rm_cart_items (user_id, product_id, name, unit_price, quantity, added_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, product_id) DO UPDATE
  SET name = EXCLUDED.name, unit_price = EXCLUDED.unit_price, quantity = EXCLUDED.quantity)SQL"},
    {"rm_cart_item_quantity",
     "UPDATE rm_cart_items SET quantity = $3 WHERE user_id = $1 AND product_id = $2"},
    {"rm_cart_item_removed", "DELETE FROM rm_cart_items WHERE user_id = $1 AND product_id = $2"},
    {"rm_cart_checked_out", "DELETE FROM rm_cart_items WHERE user_id = $1"},
    {"rm_order_placed", R"SQL(
INSERT INTO rm_orders (id, order_number, user_id, status, total, currency, items, status_history,
                       created_at, updated_at)
VALUES ($1, $2, $3, 'pending', $4, $5, $6::jsonb,
        jsonb_build_array(jsonb_build_object('status', 'pending', 'at', $7::text)), $8, $8)
ON CONFLICT (id) DO NOTHING)SQL"},
    {"rm_order_status", R"SQL(
UPDATE rm_orders SET status = $2,
  status_history = status_history || jsonb_build_array(jsonb_build_object('status', $2::text, 'at', $3::text)),
  updated_at = $4
WHERE id = $1)SQL"},
    {"rm_order_shipment", R"SQL(
UPDATE rm_orders SET shipment = jsonb_build_object('carrier', $2::text, 'tracking_number', $3::text,
                                                   'shipped_at', $4::text)
WHERE id = $1)SQL"},
    {"rm_payment_initiated", R"SQL(
UPDATE rm_orders SET payment = jsonb_build_object('payment_id', $2::text, 'status', 'initiated',
                                                  'amount', $3::bigint, 'provider', $4::text),
                     updated_at = $5
WHERE id = $1)SQL"},
    // Only the order's current payment attempt is shown; a report on an older attempt changes
    // nothing here.
    {"rm_payment_status", R"SQL(
UPDATE rm_orders SET payment = jsonb_set(payment, '{status}', to_jsonb($3::text)), updated_at = $4
WHERE id = $1 AND payment->>'payment_id' = $2)SQL"},
    // One projector at a time per database: a second process (or the backend of a killed one
    // still finishing its last commit) waits here instead of applying the same batch twice.
    // An advisory lock takes no transaction id, so it does not hold back the reader's horizon.
    {"rm_projector_lock", "SELECT pg_advisory_xact_lock(2, hashtext('read_models'))"},
    {"rm_checkpoint_load",
     "SELECT last_tx::text, last_position FROM rm_checkpoints WHERE name = $1"},
    {"rm_checkpoint_save", R"SQL(
INSERT INTO rm_checkpoints (name, last_tx, last_position, max_position, updated_at)
VALUES ($1, $2::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, last_position = EXCLUDED.last_position,
  max_position = GREATEST(rm_checkpoints.max_position, EXCLUDED.max_position), updated_at = now())SQL"},
};

void prepare(pqxx::connection& c) {
  for (const auto& [name, sql] : kStatements) c.prepare(name, sql);
}

std::optional<std::string> opt(const std::optional<std::string>& v) { return v; }

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

}  // namespace

void apply(pqxx::transaction_base& tx, const events::RecordedEvent& e) {
  const std::string& at = e.occurred_at;
  auto status = [&](const std::string& order_id, const char* s) {
    tx.exec_prepared("rm_order_status", order_id, s, at, at);
  };
  std::visit(
      Overloaded{
          [&](const ev::UserRegistered& x) {
            tx.exec_prepared("rm_user_registered", x.user_id, x.email, x.name,
                             roles_json(x.roles), at);
          },
          [&](const ev::CategoryCreated& x) {
            tx.exec_prepared("rm_category_created", x.category_id, x.name,
                             x.parent_id.value_or(""), at);
          },
          [&](const ev::ProductCreated& x) {
            tx.exec_prepared("rm_product_created", x.product_id, x.name, x.description, x.sku,
                             x.category_id, x.price, x.stock, at);
          },
          [&](const ev::ProductUpdated& x) {
            tx.exec_prepared("rm_product_updated", x.product_id, opt(x.name), opt(x.description),
                             opt(x.sku), opt(x.category_id), x.price, at);
            tx.exec_prepared("rm_cart_product_updated", x.product_id, opt(x.name), x.price);
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
                             x.line_quantity, at);
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
                             x.currency, lines_json(x.lines), at, at);
          },
          [&](const ev::OrderCancelled& x) { status(x.order_id, "cancelled"); },
          [&](const ev::OrderPaid& x) { status(x.order_id, "paid"); },
          [&](const ev::OrderShipped& x) {
            status(x.order_id, "shipped");
            tx.exec_prepared("rm_order_shipment", x.order_id, x.carrier, x.tracking_number, at);
          },
          [&](const ev::OrderDelivered& x) { status(x.order_id, "delivered"); },
          [&](const ev::PaymentInitiated& x) {
            tx.exec_prepared("rm_payment_initiated", x.order_id, x.payment_id, x.amount,
                             x.provider, at);
          },
          [&](const ev::PaymentCaptured& x) {
            tx.exec_prepared("rm_payment_status", x.order_id, x.payment_id, "captured", at);
          },
          [&](const ev::PaymentFailed& x) {
            tx.exec_prepared("rm_payment_status", x.order_id, x.payment_id, "failed", at);
          },
      },
      e.decode());
}

struct Projector::Impl {
  std::string url;
  Options options;
  std::unique_ptr<pqxx::connection> conn;

  pqxx::connection& connection() {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(url);
      pqxx::nontransaction(*conn).exec("SET TIME ZONE 'UTC'");
      prepare(*conn);
    }
    return *conn;
  }
};

Projector::Projector(std::string database_url, Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->url = std::move(database_url);
  impl_->options = options;
}
Projector::~Projector() = default;

infra::GlobalCheckpoint Projector::checkpoint() {
  pqxx::work tx(impl_->connection());
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
  for (const auto& e : batch.events) {
    apply(tx, e);
    max_position = std::max(max_position, e.position);
  }
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
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(impl_->options.idle_poll_ms));
    } catch (const std::exception& e) {
      log::error("projection failed, retrying in {} ms: {}", backoff_ms, e.what());
      impl_->conn.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
  }
}

}  // namespace shop::projector
