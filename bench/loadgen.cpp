// shop-loadgen: closed-loop load for the shop's HTTP APIs (one blocking keep-alive connection per
// thread, each sending its next request as soon as the previous answer is in).
//
//   shop-loadgen seed        --admin-email E --admin-password P --products N --out FILE
//   shop-loadgen add-to-cart --connections 32 --duration 15 [--products-file FILE]
//   shop-loadgen checkout    --connections 32 --duration 15 [--products-file FILE]
//   shop-loadgen visibility  --connections 4 --background 16 --duration 15
//   shop-loadgen get         --path '/api/products?limit=20' --connections 32 --duration 15
//
// Each scenario first does its setup outside the timed part (registers one customer per
// connection, in parallel: argon2id makes registration slow on purpose), then runs
// --warmup seconds unmeasured and --duration seconds measured. Only requests that start and end
// inside the measured window count. It prints one machine-readable line
//   RESULT scenario=... connections=... seconds=... ops=... rate=... errors=... p50_ms=... ...
// and one line for people. Exit code 0 when the run completed (errors are reported, not fatal),
// 1 when setup failed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shop/events/json.h"
#include "support/http_client.h"

namespace {

using shop::testing::HttpClient;
using shop::testing::HttpResult;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------------------------ settings

struct Endpoint {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
};

// "http://host:port", "host:port" or a bare port.
Endpoint parse_endpoint(std::string s) {
  if (s.rfind("http://", 0) == 0) s = s.substr(7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  Endpoint e;
  auto colon = s.rfind(':');
  std::string port = s;
  if (colon != std::string::npos) {
    e.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  const int p = std::stoi(port);
  if (p <= 0 || p > 65535) throw std::invalid_argument("bad port in " + s);
  e.port = static_cast<unsigned short>(p);
  return e;
}

struct Settings {
  std::string command_url = "http://127.0.0.1:8080";
  std::string query_url = "http://127.0.0.1:8081";
  Endpoint command;
  Endpoint query;
  int connections = 32;
  int background = 16;  // visibility: add-to-cart connections running beside the probes
  double background_rate = 0;  // visibility: their total commands/s (0: as fast as they can)
  double duration = 15;
  double warmup = 3;
  int setup_threads = 8;  // parallel registrations / logins
  int products = 100;     // products to create when no --products-file is given
  int per_connection_products = 10;
  std::int64_t stock = 1000000000;
  std::string products_file;
  std::string admin_email;
  std::string admin_password;
  std::string out_file;
  std::vector<std::string> paths{"/api/products?limit=20"};
  std::vector<std::string> extra_headers;
  std::string label;
  bool idempotency_keys = false;  // checkout: send an Idempotency-Key with every order
};

std::string random_hex(std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += digits[rd() % 16];
  return s;
}

[[noreturn]] void fail(const std::string& what, const HttpResult& r) {
  throw std::runtime_error(what + ": HTTP " + std::to_string(r.status) + " " + r.body);
}

// -------------------------------------------------------------------------------- measurement

// One thread's samples. Latencies in microseconds.
struct Samples {
  std::vector<std::uint32_t> latency_us;
  std::vector<std::uint32_t> extra_us;  // a second latency some scenarios keep (e.g. the cycle)
  std::uint64_t ok = 0;
  std::map<std::string, std::uint64_t> errors;  // "409", "503", "exception", ...
};

struct Window {
  Clock::time_point from;  // end of the warm-up
  Clock::time_point to;    // end of the run
  bool inside(Clock::time_point start, Clock::time_point end) const {
    return start >= from && end <= to;
  }
};

std::uint32_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return static_cast<std::uint32_t>(std::clamp<long long>(us, 0, 0xffffffffLL));
}

struct Summary {
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  std::string error_detail;
  double seconds = 0;
  double rate = 0;
  std::vector<std::uint32_t> sorted;
  std::vector<std::uint32_t> sorted_extra;
};

double percentile_ms(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank.
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1] / 1000.0;
}

Summary summarise(const std::vector<Samples>& all, const Window& w) {
  Summary s;
  std::map<std::string, std::uint64_t> errors;
  for (const auto& t : all) {
    s.ops += t.ok;
    s.sorted.insert(s.sorted.end(), t.latency_us.begin(), t.latency_us.end());
    s.sorted_extra.insert(s.sorted_extra.end(), t.extra_us.begin(), t.extra_us.end());
    for (const auto& [k, v] : t.errors) {
      errors[k] += v;
      s.errors += v;
    }
  }
  std::sort(s.sorted.begin(), s.sorted.end());
  std::sort(s.sorted_extra.begin(), s.sorted_extra.end());
  s.seconds = std::chrono::duration<double>(w.to - w.from).count();
  s.rate = s.seconds > 0 ? static_cast<double>(s.ops) / s.seconds : 0;
  for (const auto& [k, v] : errors) {
    if (!s.error_detail.empty()) s.error_detail += ",";
    s.error_detail += k + ":" + std::to_string(v);
  }
  if (s.error_detail.empty()) s.error_detail = "none";
  return s;
}

std::string fmt(double v, int decimals = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string latency_fields(const std::vector<std::uint32_t>& sorted, const std::string& prefix) {
  std::ostringstream o;
  o << prefix << "p50_ms=" << fmt(percentile_ms(sorted, 50)) << " " << prefix
    << "p90_ms=" << fmt(percentile_ms(sorted, 90)) << " " << prefix
    << "p95_ms=" << fmt(percentile_ms(sorted, 95)) << " " << prefix
    << "p99_ms=" << fmt(percentile_ms(sorted, 99)) << " " << prefix
    << "max_ms=" << fmt(sorted.empty() ? 0 : sorted.back() / 1000.0);
  return o.str();
}

std::string latency_words(const std::vector<std::uint32_t>& sorted) {
  std::ostringstream o;
  o << "p50 " << fmt(percentile_ms(sorted, 50)) << " ms, p90 " << fmt(percentile_ms(sorted, 90))
    << " ms, p95 " << fmt(percentile_ms(sorted, 95)) << " ms, p99 "
    << fmt(percentile_ms(sorted, 99)) << " ms, max "
    << fmt(sorted.empty() ? 0 : sorted.back() / 1000.0) << " ms";
  return o.str();
}

// Runs `body(index, samples, window)` on n threads, all starting together; returns their samples.
template <class Body>
std::vector<Samples> run_threads(int n, const Window& w, Body body) {
  std::vector<Samples> samples(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto& s = samples[static_cast<std::size_t>(i)];
      s.latency_us.reserve(1 << 16);
      try {
        body(i, s, w);
      } catch (const std::exception& e) {
        ++s.errors[std::string("thread_died")];
        std::cerr << "worker " << i << " stopped: " << e.what() << "\n";
      }
    });
  }
  // Tells whoever watches (bench/run.sh samples CPU from then on) that the measured part begins.
  std::thread marker([&w] {
    std::this_thread::sleep_until(w.from);
    std::cerr << "measuring: " << fmt(std::chrono::duration<double>(w.to - w.from).count(), 1)
              << " s from now" << std::endl;
  });
  for (auto& t : threads) t.join();
  marker.join();
  return samples;
}

Window make_window(const Settings& st) {
  const auto now = Clock::now();
  Window w;
  w.from = now + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(st.warmup));
  w.to = w.from + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(st.duration));
  return w;
}

void count_error(Samples& s, const HttpResult& r, Clock::time_point t0, Clock::time_point t1,
                 const Window& w) {
  if (w.inside(t0, t1)) ++s.errors[std::to_string(r.status)];
}

// ---------------------------------------------------------------------------------- the shop

// Setup requests that failed with a 5xx or a 400 (our setup bodies are valid, so a 400 is the
// server's fault) and were sent again: setup must not fail on a rare server error, and the count
// is printed so that it is not hidden.
std::atomic<int> g_setup_retries{0};

HttpResult post_setup(HttpClient& c, const std::string& target, const std::string& body,
                      const std::string& token = "") {
  for (int attempt = 1;; ++attempt) {
    auto r = c.post(target, body, token);
    if ((r.status < 500 && r.status != 400) || attempt == 5) return r;
    ++g_setup_retries;
  }
}

void report_setup_retries() {
  if (const int n = g_setup_retries.exchange(0); n > 0) {
    std::cerr << "setup: WARNING: " << n
              << " setup request(s) failed with a 5xx or 400 and were sent again" << std::endl;
  }
}

struct Customer {
  std::string email;
  std::string user_id;
  std::string token;
};

std::string login(HttpClient& c, const std::string& email, const std::string& password) {
  auto r = post_setup(c, "/api/auth/login",
                  "{\"email\":" + shop::json::quote(email) +
                      ",\"password\":" + shop::json::quote(password) + "}");
  if (r.status != 200) fail("login " + email, r);
  return shop::json::get_string(r.json(), "access");
}

// Registers and signs in n fresh customers, setup_threads at a time.
std::vector<Customer> register_customers(const Settings& st, int n) {
  const std::string run = random_hex(10);
  const std::string password = "bench-password-" + run;
  std::vector<Customer> out(static_cast<std::size_t>(n));
  std::atomic<int> next{0};
  std::mutex m;
  std::string error;
  std::vector<std::thread> threads;
  const auto started = Clock::now();
  for (int t = 0; t < std::min(st.setup_threads, n); ++t) {
    threads.emplace_back([&] {
      try {
        HttpClient c(st.command.host, st.command.port);
        for (int i = next++; i < n; i = next++) {
          auto& cu = out[static_cast<std::size_t>(i)];
          cu.email = "bench-" + run + "-" + std::to_string(i) + "@example.com";
          auto r = post_setup(c, "/api/auth/register",
                          "{\"email\":" + shop::json::quote(cu.email) + ",\"password\":" +
                              shop::json::quote(password) + ",\"name\":\"Bench " +
                              std::to_string(i) + "\"}");
          if (r.status != 201) fail("register " + cu.email, r);
          cu.user_id = shop::json::get_string(r.json(), "user_id");
          cu.token = login(c, cu.email, password);
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(m);
        error = e.what();
        next = n;
      }
    });
  }
  for (auto& t : threads) t.join();
  report_setup_retries();
  if (!error.empty()) throw std::runtime_error(error);
  std::cerr << "setup: " << n << " customers registered and signed in in "
            << fmt(std::chrono::duration<double>(Clock::now() - started).count(), 1) << " s\n";
  return out;
}

// Creates a category and n products with big stock through the command API (as an admin).
std::vector<std::string> create_products(const Settings& st, int n) {
  if (st.admin_email.empty() || st.admin_password.empty()) {
    throw std::runtime_error("creating products needs --admin-email and --admin-password "
                             "(or give --products-file)");
  }
  HttpClient c(st.command.host, st.command.port);
  const std::string token = login(c, st.admin_email, st.admin_password);
  const std::string run = random_hex(8);
  auto r = post_setup(c, "/api/admin/categories", "{\"name\":\"Bench " + run + "\"}", token);
  if (r.status != 201) fail("create category", r);
  const std::string category = shop::json::get_string(r.json(), "id");
  std::vector<std::string> ids(static_cast<std::size_t>(n));
  std::atomic<int> next{0};
  std::mutex m;
  std::string error;
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(st.setup_threads, n); ++t) {
    threads.emplace_back([&] {
      try {
        HttpClient client(st.command.host, st.command.port);
        for (int i = next++; i < n; i = next++) {
          const int cents = 500 + (i * 7919) % 200000;
          const std::string price = std::to_string(cents / 100) + "." +
                                    (cents % 100 < 10 ? "0" : "") + std::to_string(cents % 100);
          auto res = post_setup(
              client, "/api/admin/products",
              "{\"name\":\"Bench product " + run + " " + std::to_string(i) +
                  "\",\"description\":\"A product created by shop-loadgen\",\"price\":\"" +
                  price + "\",\"stock\":" + std::to_string(st.stock) + ",\"category_id\":\"" +
                  category + "\",\"sku\":\"BENCH-" + run + "-" + std::to_string(i) + "\"}",
              token);
          if (res.status != 201) fail("create product", res);
          ids[static_cast<std::size_t>(i)] = shop::json::get_string(res.json(), "id");
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(m);
        error = e.what();
        next = n;
      }
    });
  }
  for (auto& t : threads) t.join();
  report_setup_retries();
  if (!error.empty()) throw std::runtime_error(error);
  std::cerr << "setup: " << n << " products created (stock " << st.stock << " each)\n";
  return ids;
}

std::vector<std::string> products(const Settings& st) {
  if (st.products_file.empty()) return create_products(st, st.products);
  std::ifstream f(st.products_file);
  if (!f) throw std::runtime_error("cannot read " + st.products_file);
  std::vector<std::string> ids;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty()) ids.push_back(line);
  }
  if (ids.empty()) throw std::runtime_error(st.products_file + " lists no products");
  return ids;
}

// The cart line of this product is at its maximum quantity (1000): use another product.
bool line_full(const HttpResult& r) {
  return r.status == 400 && r.body.find("invalid_quantity") != std::string::npos;
}

std::string add_item_body(const std::string& product_id) {
  return "{\"product_id\":\"" + product_id + "\",\"quantity\":1}";
}

// The products one connection adds: a window of the pool, so that carts stay small (at most
// per_connection_products lines) and the load spreads over every product.
struct ProductCycle {
  ProductCycle(const std::vector<std::string>& pool, int connection, int per_connection)
      : pool_(pool) {
    const auto k = static_cast<std::size_t>(std::max(1, per_connection));
    for (std::size_t j = 0; j < k; ++j) {
      mine_.push_back((static_cast<std::size_t>(connection) * k + j) % pool.size());
    }
  }
  const std::string& next() { return pool_[mine_[i_++ % mine_.size()]]; }
  // A product whose line has reached the maximum quantity: stop using it.
  void drop_last() {
    if (mine_.size() > 1) {
      const std::size_t at = (i_ - 1) % mine_.size();
      mine_.erase(mine_.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }

 private:
  const std::vector<std::string>& pool_;
  std::vector<std::size_t> mine_;
  std::size_t i_ = 0;
};

// One add-to-cart loop (used by add-to-cart and as the background of visibility). With a
// positive `per_second` it sends at that pace (open loop: a late answer does not delay the
// schedule, it is caught up at once), else as fast as answers come (closed loop).
void add_to_cart_loop(const Settings& st, const Customer& cu, const std::vector<std::string>& pool,
                      int index, Samples& s, const Window& w, double per_second = 0) {
  HttpClient c(st.command.host, st.command.port);
  ProductCycle cycle(pool, index, st.per_connection_products);
  const auto interval = per_second > 0 ? std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(1.0 / per_second))
                                       : Clock::duration::zero();
  // Connections start spread over one interval, not all at once.
  auto next = Clock::now() + interval * index / std::max(1, st.background);
  while (Clock::now() < w.to) {
    if (per_second > 0) {
      std::this_thread::sleep_until(next);
      next += interval;
    }
    const auto t0 = Clock::now();
    HttpResult r;
    try {
      r = c.post("/api/cart/items", add_item_body(cycle.next()), cu.token);
    } catch (const std::exception&) {
      if (w.inside(t0, Clock::now())) ++s.errors["exception"];
      continue;
    }
    const auto t1 = Clock::now();
    if (r.status == 200) {
      if (w.inside(t0, t1)) {
        ++s.ok;
        s.latency_us.push_back(micros(t1 - t0));
      }
    } else {
      count_error(s, r, t0, t1, w);
      if (line_full(r)) cycle.drop_last();
    }
  }
}

void print_result(const std::string& scenario, const Settings& st, int connections,
                  const Summary& s, const std::string& unit, const std::string& extra_fields,
                  const std::string& extra_words) {
  std::cout << "RESULT scenario=" << scenario;
  if (!st.label.empty()) std::cout << " label=" << st.label;
  std::cout << " connections=" << connections << " seconds=" << fmt(s.seconds, 1)
            << " ops=" << s.ops << " rate=" << fmt(s.rate, 1) << " errors=" << s.errors
            << " error_detail=" << s.error_detail << " " << latency_fields(s.sorted, "")
            << (extra_fields.empty() ? "" : " " + extra_fields) << "\n";
  std::cout << scenario << (st.label.empty() ? "" : " (" + st.label + ")") << ": "
            << fmt(s.rate, 1) << " " << unit << " over " << fmt(s.seconds, 1) << " s with "
            << connections << " connections; latency " << latency_words(s.sorted) << "; "
            << s.errors << " errors (" << s.error_detail << ")"
            << (extra_words.empty() ? "" : "; " + extra_words) << "\n";
}

// ---------------------------------------------------------------------------------- scenarios

int seed(const Settings& st) {
  auto ids = create_products(st, st.products);
  std::ostream* out = &std::cout;
  std::ofstream f;
  if (!st.out_file.empty()) {
    f.open(st.out_file);
    if (!f) throw std::runtime_error("cannot write " + st.out_file);
    out = &f;
  }
  for (const auto& id : ids) *out << id << "\n";
  return 0;
}

int add_to_cart(const Settings& st) {
  const auto pool = products(st);
  const auto customers = register_customers(st, st.connections);
  const Window w = make_window(st);
  auto samples = run_threads(st.connections, w, [&](int i, Samples& s, const Window& win) {
    add_to_cart_loop(st, customers[static_cast<std::size_t>(i)], pool, i, s, win);
  });
  print_result("add-to-cart", st, st.connections, summarise(samples, w), "commands/s", "", "");
  return 0;
}

int checkout(const Settings& st) {
  const auto pool = products(st);
  const auto customers = register_customers(st, st.connections);
  const Window w = make_window(st);
  const std::string run_tag = random_hex(8);
  // latency_us: POST /api/orders alone; extra_us: the whole cycle (add-to-cart + checkout).
  auto samples = run_threads(st.connections, w, [&](int i, Samples& s, const Window& win) {
    const auto& cu = customers[static_cast<std::size_t>(i)];
    HttpClient c(st.command.host, st.command.port);
    std::mt19937 rng(static_cast<unsigned>(i) * 7919u + 1u);
    std::uint64_t order_seq = 0;
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    while (Clock::now() < win.to) {
      const auto t0 = Clock::now();
      try {
        auto added = c.post("/api/cart/items", add_item_body(pool[pick(rng)]), cu.token);
        if (added.status != 200) {
          count_error(s, added, t0, Clock::now(), win);
          continue;
        }
        const auto t1 = Clock::now();
        std::vector<std::pair<std::string, std::string>> headers;
        if (st.idempotency_keys) {
          headers.emplace_back("Idempotency-Key", "bench-" + std::to_string(i) + "-" +
                                                      std::to_string(++order_seq) + "-" + run_tag);
        }
        auto placed = c.post("/api/orders", "", cu.token, headers);
        const auto t2 = Clock::now();
        if (placed.status != 201) {
          count_error(s, placed, t0, t2, win);
          continue;
        }
        if (win.inside(t0, t2)) {
          ++s.ok;
          s.latency_us.push_back(micros(t2 - t1));
          s.extra_us.push_back(micros(t2 - t0));
        }
      } catch (const std::exception&) {
        if (win.inside(t0, Clock::now())) ++s.errors["exception"];
      }
    }
  });
  const auto sum = summarise(samples, w);
  print_result("checkout", st, st.connections, sum, "orders/s",
               latency_fields(sum.sorted_extra, "cycle_"),
               "add-to-cart + checkout cycle " + latency_words(sum.sorted_extra));
  return 0;
}

// Probes: add-to-cart, then GET /api/cart on the query API with X-Min-Position set to the
// command's position; the time from the command's answer to the query's 200 is the visibility
// latency. --background add-to-cart connections run at the same time.
int visibility(const Settings& st) {
  const auto pool = products(st);
  const int probes = st.connections;
  const int background = std::max(0, st.background);
  const auto customers = register_customers(st, probes + background);
  const Window w = make_window(st);
  std::atomic<std::uint64_t> stale{0};
  auto samples = run_threads(probes + background, w, [&](int i, Samples& s, const Window& win) {
    const auto& cu = customers[static_cast<std::size_t>(i)];
    if (i >= probes) {
      add_to_cart_loop(st, cu, pool, i - probes, s, win,
                       st.background_rate > 0 ? st.background_rate / background : 0);
      return;
    }
    HttpClient cmd(st.command.host, st.command.port);
    HttpClient query(st.query.host, st.query.port);
    ProductCycle cycle(pool, i, st.per_connection_products);
    while (Clock::now() < win.to) {
      const auto t0 = Clock::now();
      try {
        auto r = cmd.post("/api/cart/items", add_item_body(cycle.next()), cu.token);
        const auto t1 = Clock::now();
        if (r.status != 200) {
          count_error(s, r, t0, t1, win);
          if (line_full(r)) cycle.drop_last();
          continue;
        }
        const auto position = shop::json::get_int(r.json(), "position");
        auto q = query.get("/api/cart", cu.token,
                           {{"X-Min-Position", std::to_string(position)}});
        const auto t2 = Clock::now();
        if (q.status != 200) {
          count_error(s, q, t1, t2, win);
          continue;
        }
        const auto seen = q.header("x-position");
        if (seen.empty() || std::stoll(seen) < position) ++stale;
        if (win.inside(t1, t2)) {
          ++s.ok;
          s.latency_us.push_back(micros(t2 - t1));
        }
      } catch (const std::exception&) {
        if (win.inside(t0, Clock::now())) ++s.errors["exception"];
      }
    }
  });
  std::vector<Samples> probe_samples(samples.begin(), samples.begin() + probes);
  std::vector<Samples> bg_samples(samples.begin() + probes, samples.end());
  const auto sum = summarise(probe_samples, w);
  const auto bg = summarise(bg_samples, w);
  std::string fields = "stale=" + std::to_string(stale.load()) + " background=" +
                       std::to_string(background) + " background_target=" +
                       fmt(st.background_rate, 0) + " background_rate=" + fmt(bg.rate, 1) +
                       " background_errors=" + std::to_string(bg.errors) + " " +
                       latency_fields(bg.sorted, "background_");
  std::string words = std::to_string(stale.load()) + " answers older than the write; beside " +
                      std::to_string(background) + " add-to-cart connections doing " +
                      fmt(bg.rate, 1) + " commands/s (" + latency_words(bg.sorted) + ")";
  print_result("visibility", st, probes, sum, "probes/s", fields, words);
  return 0;
}

// Plain GET load on the query API; each connection cycles through --path values.
int get(const Settings& st) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& h : st.extra_headers) {
    auto colon = h.find(':');
    if (colon == std::string::npos) throw std::invalid_argument("--header wants 'Name: value'");
    auto value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    headers.emplace_back(h.substr(0, colon), value);
  }
  const Window w = make_window(st);
  auto samples = run_threads(st.connections, w, [&](int i, Samples& s, const Window& win) {
    HttpClient c(st.query.host, st.query.port);
    std::size_t k = static_cast<std::size_t>(i);
    while (Clock::now() < win.to) {
      const auto t0 = Clock::now();
      try {
        auto r = c.get(st.paths[k++ % st.paths.size()], "", headers);
        const auto t1 = Clock::now();
        if (r.status != 200) {
          count_error(s, r, t0, t1, win);
        } else if (win.inside(t0, t1)) {
          ++s.ok;
          s.latency_us.push_back(micros(t1 - t0));
        }
      } catch (const std::exception&) {
        if (win.inside(t0, Clock::now())) ++s.errors["exception"];
      }
    }
  });
  print_result("get", st, st.connections, summarise(samples, w), "requests/s", "", "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings st;
  CLI::App app{"shop-loadgen: load for the shop backend's HTTP APIs"};
  app.require_subcommand(1);
  app.add_option("--command-url", st.command_url, "command API base URL")->capture_default_str();
  app.add_option("--query-url", st.query_url, "query API base URL")->capture_default_str();
  app.add_option("--label", st.label, "a tag copied into the RESULT line");

  auto common = [&](CLI::App* sub) {
    sub->add_option("-c,--connections", st.connections, "concurrent connections")
        ->capture_default_str();
    sub->add_option("-d,--duration", st.duration, "measured seconds")->capture_default_str();
    sub->add_option("-w,--warmup", st.warmup, "unmeasured seconds first")->capture_default_str();
  };
  auto catalog = [&](CLI::App* sub) {
    sub->add_option("--products-file", st.products_file, "product ids, one a line (from seed)");
    sub->add_option("--products", st.products, "products to create when no file is given")
        ->capture_default_str();
    sub->add_option("--stock", st.stock, "stock of each created product")->capture_default_str();
    sub->add_option("--admin-email", st.admin_email, "an admin account (to create products)");
    sub->add_option("--admin-password", st.admin_password, "its password");
    sub->add_option("--setup-threads", st.setup_threads, "parallel registrations in setup")
        ->capture_default_str();
    sub->add_option("--per-connection-products", st.per_connection_products,
                    "distinct products each connection adds (cart size)")
        ->capture_default_str();
  };

  auto* seed_cmd = app.add_subcommand("seed", "create products with big stock; print their ids");
  catalog(seed_cmd);
  seed_cmd->add_option("-o,--out", st.out_file, "write the ids here instead of stdout");

  auto* add_cmd = app.add_subcommand("add-to-cart", "POST /api/cart/items, 1 unit, per user");
  common(add_cmd);
  catalog(add_cmd);

  auto* checkout_cmd =
      app.add_subcommand("checkout", "add-to-cart then POST /api/orders; counts orders/s");
  common(checkout_cmd);
  catalog(checkout_cmd);
  checkout_cmd->add_flag("--idempotency-keys", st.idempotency_keys,
                         "send an Idempotency-Key with every order (as a careful client does)");

  auto* vis_cmd = app.add_subcommand(
      "visibility", "command, then GET /api/cart with X-Min-Position; under add-to-cart load");
  common(vis_cmd);
  catalog(vis_cmd);
  vis_cmd->add_option("--background", st.background, "add-to-cart connections beside the probes")
      ->capture_default_str();
  vis_cmd->add_option("--background-rate", st.background_rate,
                      "their total commands/s, paced (0: as fast as they can)")
      ->capture_default_str();

  auto* get_cmd = app.add_subcommand("get", "GET load on the query API (wrk's fallback)");
  common(get_cmd);
  get_cmd->add_option("--path", st.paths, "target(s), cycled per connection")
      ->capture_default_str();
  get_cmd->add_option("--header", st.extra_headers, "extra header 'Name: value'");

  CLI11_PARSE(app, argc, argv);

  try {
    st.command = parse_endpoint(st.command_url);
    st.query = parse_endpoint(st.query_url);
    if (st.connections < 1) throw std::invalid_argument("--connections must be at least 1");
    if (st.duration <= 0) throw std::invalid_argument("--duration must be positive");
    if (st.warmup < 0) throw std::invalid_argument("--warmup must not be negative");
    if (st.products < 1) throw std::invalid_argument("--products must be at least 1");
    if (*seed_cmd) return seed(st);
    if (*add_cmd) return add_to_cart(st);
    if (*checkout_cmd) return checkout(st);
    if (*vis_cmd) {
      // Probes are few by default: they measure, the background makes the load.
      if (vis_cmd->count("--connections") == 0) st.connections = 4;
      return visibility(st);
    }
    if (*get_cmd) return get(st);
  } catch (const std::exception& e) {
    std::cerr << "shop-loadgen: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
