#include "seed.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>
#include <vector>

#include "demo.h"
#include "seed_data.h"
#include "shop/infra/crypto.h"

namespace shop::tools {

namespace {

using SteadyClock = std::chrono::steady_clock;
using command::Context;

std::string grouped(std::int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

// The progress line: the phase, how far it is, the events written so far (the distance the
// store's global position has moved, which the commands' answers tell) and the rate over the
// last second and since the start. Redrawn once a second by a thread of its own.
class ProgressLine {
 public:
  ProgressLine(std::ostream* out, std::int64_t start_position)
      : out_(out), start_position_(start_position), last_position_(start_position) {
    if (out_ != nullptr) drawer_ = std::thread([this] { draw_loop(); });
  }
  ~ProgressLine() {
    if (!drawer_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    drawer_.join();
    *out_ << "\r\033[K" << std::flush;  // the summary line takes its place
  }
  void phase(std::string name, std::int64_t total) {
    std::lock_guard lock(mutex_);
    phase_ = std::move(name);
    total_ = total;
    done_ = 0;
  }
  void step() { ++done_; }
  void note(std::int64_t position) {
    auto seen = last_position_.load(std::memory_order_relaxed);
    while (position > seen && !last_position_.compare_exchange_weak(seen, position)) {
    }
  }

 private:
  void draw_loop() {
    const auto start = SteadyClock::now();
    auto previous_time = start;
    std::int64_t previous_events = 0;
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
      const auto now = SteadyClock::now();
      const std::int64_t events = last_position_.load() - start_position_;
      const double recent = static_cast<double>(events - previous_events) /
                            std::chrono::duration<double>(now - previous_time).count();
      const double overall =
          static_cast<double>(events) / std::chrono::duration<double>(now - start).count();
      previous_time = now;
      previous_events = events;
      *out_ << "\rseed-demo: " << phase_ << " " << grouped(done_.load()) << "/" << grouped(total_)
            << ", " << grouped(events) << " events, " << grouped(static_cast<std::int64_t>(recent))
            << " events/s (average " << grouped(static_cast<std::int64_t>(overall)) << ")\033[K"
            << std::flush;
    }
  }

  std::ostream* out_;
  const std::int64_t start_position_;
  std::atomic<std::int64_t> last_position_;
  std::atomic<std::int64_t> done_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string phase_;
  std::int64_t total_ = 0;
  std::thread drawer_;
};

// Runs task(0) ... task(count - 1) on `threads` threads, each task once, in about that order. The
// first exception stops the threads from taking more tasks, and is rethrown once all have ended.
void run_parallel(int count, int threads, const std::function<void(int)>& task) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    while (!failed.load()) {
      const int i = next.fetch_add(1);
      if (i >= count) return;
      try {
        task(i);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(threads, count); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::int64_t scalar(infra::EventStore& store, const char* sql) {
  auto lease = store.pool().acquire();
  pqxx::nontransaction tx(*lease);
  return tx.exec(sql)[0][0].as<std::int64_t>();
}

// A seeded SKU or e-mail address that someone took by hand: the next variant ("-2", ...). The
// numbering (see make_product, make_customer) makes this rare.
template <class F>
auto with_unique(const std::string& value, const char* taken_code,
                 const std::function<std::string(const std::string&, int)>& variant, F&& attempt) {
  for (int n = 1;; ++n) {
    try {
      return attempt(n == 1 ? value : variant(value, n));
    } catch (const command::CommandRejected& e) {
      if (e.error.code != taken_code || n >= 20) throw;
    }
  }
}

}  // namespace

std::string seed_options_problem(const SeedOptions& options) {
  if (options.products < 0 || options.users < 0 || options.orders < 0) {
    return "--products, --users and --orders cannot be negative";
  }
  if (options.orders > 0 && (options.products == 0 || options.users == 0)) {
    return "--orders needs --products and --users: the orders buy the products the same run "
           "creates, for the customers it registers";
  }
  if (options.threads < 1 || options.threads > 256) return "--threads must be between 1 and 256";
  return {};
}

SeedReport seed_at_scale(command::CommandService& service, infra::EventStore& store,
                         const SeedOptions& options, std::ostream* progress) {
  if (auto problem = seed_options_problem(options); !problem.empty()) {
    throw std::invalid_argument(problem);
  }
  const auto started = SteadyClock::now();
  const std::int64_t start_position =
      scalar(store, "SELECT coalesce(max(position), 0) FROM events");
  SeedReport report;
  ProgressLine line(progress, start_position);
  const std::uint64_t seed = options.seed;

  report.demo_products = seed_demo(service, store);
  std::map<std::string, std::string> categories;
  if (options.products > 0) categories = demo_categories(service, store);

  // SKUs and e-mail addresses are numbered after the ones that exist, so that a second run (or a
  // run on a live catalog) does not collide, and a run on an empty store always makes the same.
  const std::int64_t skus = scalar(store, "SELECT count(*) FROM unique_claims WHERE scope = 'sku'");
  const std::int64_t emails =
      scalar(store, "SELECT count(*) FROM unique_claims WHERE scope = 'email'");
  std::vector<seed::ProductSpec> products;
  products.reserve(static_cast<std::size_t>(options.products));
  for (int i = 0; i < options.products; ++i)
    products.push_back(seed::make_product(seed, i, skus + i + 1));
  std::vector<seed::OrderPlan> plans;
  plans.reserve(static_cast<std::size_t>(options.orders));
  if (options.orders > 0) {
    const seed::OrderPlanner planner(seed, options.users, products);
    for (int i = 0; i < options.orders; ++i) plans.push_back(planner.plan(i));
  }
  // Every product starts with what the seeded orders will take from it plus its spare stock, so
  // no checkout ever finds it sold out, whatever order the threads run the orders in: the data
  // depends on the seed alone. (Cancelled orders give their stock back; it stays spare.)
  std::vector<std::int64_t> demand(products.size(), 0);
  for (const auto& plan : plans) {
    for (const auto& l : plan.lines) demand[static_cast<std::size_t>(l.product)] += l.quantity;
    report.cart_steps += static_cast<int>(plan.steps.size());
  }

  // Staff build the catalog while customers register.
  std::vector<std::string> product_ids(products.size()),
      user_ids(static_cast<std::size_t>(options.users));
  for (auto& id : product_ids) id = new_uuid();
  const std::string password_hash =
      options.users > 0 ? infra::hash_password(kDemoCustomerPassword) : std::string();
  line.phase("catalog and customers", options.products + options.users);
  const auto staff = [] { return Context::make(std::nullopt); };
  run_parallel(options.products + options.users, options.threads, [&](int i) {
    if (i < options.products) {
      const auto k = static_cast<std::size_t>(i);
      const auto& p = products[k];
      const std::int64_t stock = p.spare_stock + demand[k];
      // A restocked product is created with half of it; the delivery brings the rest.
      const std::int64_t delivery = p.restocked ? std::max<std::int64_t>(1, stock / 2) : 0;
      const auto& category = categories.at(std::string(seed::shelf_name(p.shelf)));
      const auto w = with_unique(
          p.sku, "sku_taken",
          [](const std::string& sku, int n) { return sku + "-" + std::to_string(n); },
          [&](const std::string& sku) {
            return service.create_product(
                {product_ids[k], p.name, p.description, sku, category, p.price, stock - delivery},
                staff());
          });
      line.note(w.position);
      if (p.new_price) {
        domain::UpdateProduct change;
        change.price = *p.new_price;
        line.note(
            service.update_product(product_ids[k], change, std::nullopt, std::nullopt, staff())
                .position);
      }
      if (delivery > 0) line.note(service.adjust_stock(product_ids[k], delivery, staff()).position);
    } else {
      const auto k = static_cast<std::size_t>(i - options.products);
      const auto c =
          seed::make_customer(seed, static_cast<int>(k), emails + static_cast<std::int64_t>(k) + 1);
      const auto w = with_unique(
          c.email, "email_taken",
          [](const std::string& email, int n) {
            return email.substr(0, email.find('@')) + "." + std::to_string(n) +
                   email.substr(email.find('@'));
          },
          [&](const std::string& email) {
            return service.register_user_with_password_hash(
                email, password_hash, c.name, {"customer"}, Context::make(std::nullopt));
          });
      user_ids[k] = w.id;
      line.note(w.position);
    }
    line.step();
  });
  report.products = options.products;
  report.users = options.users;
  for (const auto& p : products) {
    report.price_changes += p.new_price ? 1 : 0;
    report.restocks += p.restocked ? 1 : 0;
  }

  // The shopping. A customer has one cart: their sessions run one at a time.
  std::vector<std::mutex> customer_busy(user_ids.size());
  line.phase("orders", options.orders);
  run_parallel(options.orders, options.threads, [&](int i) {
    const auto& plan = plans[static_cast<std::size_t>(i)];
    std::lock_guard busy(customer_busy[static_cast<std::size_t>(plan.user)]);
    const auto& user = user_ids[static_cast<std::size_t>(plan.user)];
    // One correlation id for the whole visit, as a storefront session would send.
    const std::string session = new_uuid();
    const auto customer = [&] { return Context::make(user, session); };
    // The sandbox provider's webhook: no user, a request of its own.
    const auto provider = [] { return Context::make(std::nullopt); };
    for (const auto& s : plan.steps) {
      const auto& product = product_ids[static_cast<std::size_t>(s.product)];
      switch (s.kind) {
        case seed::CartStep::Kind::add:
          line.note(service.add_cart_item(user, product, s.quantity, customer()).position);
          break;
        case seed::CartStep::Kind::change:
          line.note(service.change_cart_item(user, product, s.quantity, customer()).position);
          break;
        case seed::CartStep::Kind::remove:
          line.note(service.remove_cart_item(user, product, customer()).position);
          break;
      }
    }
    const auto order = service.place_order(user, std::nullopt, customer());
    line.note(order.position);
    auto pay = [&](bool succeeds, const std::string& reason) {
      const auto started_payment =
          service.start_payment(order.order_id, user, false, "sandbox", customer());
      line.note(started_payment.position);
      const auto settled =
          service.settle_payment(started_payment.payment_id, {succeeds, reason}, provider());
      line.note(settled.position);
      if (settled.status != (succeeds ? "captured" : "failed")) {
        throw std::runtime_error("payment " + settled.payment_id + " is " + settled.status);
      }
    };
    if (plan.payment_declined) pay(false, plan.decline_reason);
    if (plan.paid) pay(true, "");
    if (plan.cancelled) {
      line.note(service.cancel_order(order.order_id, user, false, plan.cancel_reason, customer())
                    .position);
    }
    if (plan.shipped) {
      line.note(service.ship_order(order.order_id, {plan.carrier, plan.tracking_number}, staff())
                    .position);
    }
    if (plan.delivered) line.note(service.deliver_order(order.order_id, staff()).position);
    line.step();
  });
  report.orders = options.orders;
  for (const auto& plan : plans) {
    report.payments += (plan.payment_declined ? 1 : 0) + (plan.paid ? 1 : 0);
    report.payments_declined += plan.payment_declined ? 1 : 0;
    report.orders_paid += plan.paid ? 1 : 0;
    report.orders_cancelled += plan.cancelled ? 1 : 0;
    report.orders_shipped += plan.shipped ? 1 : 0;
    report.orders_delivered += plan.delivered ? 1 : 0;
  }

  // End of line for a few products, once nobody is buying them any more.
  for (std::size_t k = 0; k < products.size(); ++k) {
    if (!products[k].discontinued_at_end) continue;
    line.note(service.discontinue_product(product_ids[k], std::nullopt, staff()).position);
    ++report.discontinued;
  }

  report.events = scalar(
      store,
      ("SELECT count(*) FROM events WHERE position > " + std::to_string(start_position)).c_str());
  report.seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  return report;
}

std::string summary_line(const SeedReport& r) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", r.seconds);
  return "seed-demo: " + std::to_string(r.users) + " users, " + std::to_string(r.products) +
         " products, " + std::to_string(r.orders) + " orders, " + std::to_string(r.events) +
         " events in " + seconds + " s (" +
         std::to_string(static_cast<std::int64_t>(r.events_per_second())) + " events/s)";
}

}  // namespace shop::tools
