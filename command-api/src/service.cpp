#include "shop/command/service.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <thread>
#include <unordered_map>

#include "shop/domain/password_policy.h"
#include "shop/infra/log.h"

namespace shop::command {

using domain::Decision;
using domain::Events;
using events::Event;
namespace ev = shop::events;

Context Context::make(std::optional<std::string> actor, std::optional<std::string> correlation) {
  Context c;
  c.actor = std::move(actor);
  c.causation_id = new_uuid();
  c.correlation_id = correlation && is_uuid(*correlation) ? *correlation : c.causation_id;
  return c;
}

namespace {

[[noreturn]] void reject(domain::DomainError e) { throw CommandRejected(std::move(e)); }

std::string normalize_email(std::string email) {
  email.erase(0, email.find_first_not_of(" \t"));
  email.erase(email.find_last_not_of(" \t") + 1);
  for (auto& ch : email) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return email;
}

// States of recently used streams, with the version and position they were folded up to. A
// state from here may be stale (another process may have written the stream since): every append
// says which version of each stream it decided on, and the store refuses it when that is no
// longer the current one; a command that decided without appending anything, or was rejected,
// on cached states is decided again on states read from the store.
template <class State>
class StateCache {
 public:
  struct Entry {
    State state;
    std::int64_t version = 0;
    std::int64_t position = 0;
  };
  std::optional<Entry> get(const std::string& stream) {
    std::lock_guard lock(mutex_);
    auto it = map_.find(stream);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void put(const std::string& stream, Entry e) {
    std::lock_guard lock(mutex_);
    if (map_.size() >= kMaxEntries) map_.clear();
    auto& slot = map_[stream];
    if (e.version >= slot.version) slot = std::move(e);
  }

 private:
  static constexpr std::size_t kMaxEntries = 200000;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> map_;
};

template <class State>
struct Loaded {
  std::string stream;
  State state{};
  std::int64_t version = 0;
  std::int64_t position = 0;
};

// One attempt at a command: the streams it loaded (with the versions to expect), the append,
// and the cache updates that follow a successful commit. Two ways to run:
//  - in a transaction (StoreSession), for commands that also write unique claims or
//    credentials: each stream to be written is locked when it is loaded, and read in the
//    transaction;
//  - in one statement (EventStore::append), for every other command: streams come from the
//    cache when they are there (from the store when `fresh` or not cached), and the append
//    checks every version the decision rests on and takes the locks itself. One round trip.
class Unit {
 public:
  Unit(infra::StoreSession& s, const Context& ctx, const Clock& clock)
      : session_(&s), store_(nullptr) {
    init(ctx, clock);
  }
  Unit(infra::EventStore& store, const Context& ctx, const Clock& clock, bool fresh)
      : session_(nullptr), store_(&store), fresh_(fresh) {
    init(ctx, clock);
  }

  // Loads a stream's state. `write`: the command may append to it (in a transaction, it is
  // locked now).
  template <class State>
  Loaded<State> load(StateCache<State>& cache, const std::string& stream, bool write) {
    if (write && session_ != nullptr) {
      if (attempted_) throw std::logic_error("lock every stream before appending");
      session_->lock_stream(stream);
    }
    Loaded<State> out;
    out.stream = stream;
    auto cached = cache.get(stream);
    if (cached) {
      out.state = std::move(cached->state);
      out.version = cached->version;
      out.position = cached->position;
    }
    if (cached && session_ == nullptr && !fresh_) {
      used_cache_ = true;
    } else {
      // Only the events after the cached version are read; none means the cache is current.
      bool read_any = false;
      auto events = session_ != nullptr ? session_->read_stream(stream, out.version)
                                        : store_->read_stream(stream, out.version);
      for (const auto& e : events) {
        out.state = domain::evolve(std::move(out.state), e.decode());
        out.version = e.stream_version;
        out.position = e.position;
        read_any = true;
      }
      if (read_any) cache.put(stream, {out.state, out.version, out.position});
    }
    track(cache, out);
    return out;
  }

  // A stream this command creates under a new random id: nothing to read, it must not exist.
  template <class State>
  Loaded<State> create(StateCache<State>& cache, const std::string& stream) {
    if (session_ != nullptr) session_->lock_stream(stream);
    Loaded<State> out;
    out.stream = stream;
    track(cache, out);
    return out;
  }

  // Appends the events, each to its own stream, atomically. Every stream written must have been
  // loaded first (that is where its expected version comes from); every other stream loaded is
  // checked to be unchanged.
  infra::AppendResult append(Events evs,
                             const std::optional<infra::IdempotencyRecord>& idempotency = {}) {
    if (attempted_) throw std::logic_error("one append per unit");
    attempted_ = true;
    appended_ = std::move(evs);
    std::vector<infra::StreamAppend> appends;
    for (const auto& e : appended_) {
      const std::string stream = ev::stream_of(e);
      auto it = std::find_if(appends.begin(), appends.end(),
                             [&](const auto& a) { return a.stream_id == stream; });
      if (it == appends.end()) {
        auto exp = expected_.find(stream);
        if (exp == expected_.end()) {
          throw std::logic_error("append to a stream that was not loaded: " + stream);
        }
        appends.push_back({stream, exp->second, {}});
        it = appends.end() - 1;
      }
      it->events.push_back({new_uuid(), std::string(ev::type_of(e)), ev::schema_version_of(e),
                            ev::data_of(e)});
      by_stream_[stream].push_back(&e);
    }
    if (appends.empty()) return result_;
    std::vector<infra::StreamCheck> checks;
    for (const auto& [stream, version] : expected_) {
      if (!by_stream_.count(stream)) checks.push_back({stream, version});
    }
    result_ = session_ != nullptr ? session_->append(appends, meta_, checks, idempotency)
                                  : store_->append(appends, meta_, checks, idempotency);
    wrote_ = true;
    return result_;
  }

  void commit() {
    if (session_ != nullptr) session_->commit();
    for (const auto& [stream, evs] : by_stream_) {
      auto it = after_commit_.find(stream);
      if (it != after_commit_.end()) {
        it->second(evs, result_.versions.at(stream), result_.positions.at(stream));
      }
    }
  }

  // Whether the outcome rests on cached states that no append has confirmed: a rejection or a
  // decision to do nothing must then be made again on states read from the store.
  bool unconfirmed() const { return used_cache_ && !wrote_; }

 private:
  void init(const Context& ctx, const Clock& clock) {
    meta_.actor = ctx.actor;
    meta_.correlation_id = ctx.correlation_id;
    meta_.causation_id = ctx.causation_id;
    meta_.occurred_at = format_time(clock.now());
  }

  template <class State>
  void track(StateCache<State>& cache, const Loaded<State>& loaded) {
    expected_[loaded.stream] = loaded.version;
    after_commit_[loaded.stream] = [&cache, loaded](const std::vector<const Event*>& evs,
                                                    std::int64_t version, std::int64_t position) {
      auto state = loaded.state;
      for (const auto* e : evs) state = domain::evolve(std::move(state), *e);
      cache.put(loaded.stream, {std::move(state), version, position});
    };
  }

  infra::StoreSession* session_;
  infra::EventStore* store_;
  bool fresh_ = true;
  bool used_cache_ = false;
  bool attempted_ = false;
  bool wrote_ = false;
  infra::Metadata meta_;
  std::map<std::string, std::int64_t> expected_;
  std::map<std::string, std::function<void(const std::vector<const Event*>&, std::int64_t,
                                           std::int64_t)>>
      after_commit_;
  Events appended_;  // owns the events that by_stream_ points into
  std::map<std::string, std::vector<const Event*>> by_stream_;
  infra::AppendResult result_;
};

template <class State>
Written written(const Loaded<State>& l, const infra::AppendResult& r, const std::string& id) {
  Written w{id, l.version, l.position};
  if (auto it = r.versions.find(l.stream); it != r.versions.end()) {
    w.version = it->second;
    w.position = r.positions.at(l.stream);
  }
  return w;
}

Events checked(Decision d) {
  if (!d.ok()) reject(d.error());
  return std::move(d.value());
}

struct IdempotentReplay {};

}  // namespace

struct CommandService::Impl {
  Impl(infra::EventStore& s, const infra::JwtCodec& j, const Clock& c)
      : store(s), jwt(j), clock(c) {}
  infra::EventStore& store;
  const infra::JwtCodec& jwt;
  const Clock& clock;
  int max_attempts = 25;
  StateCache<domain::UserState> users;
  StateCache<domain::CategoryState> categories;
  StateCache<domain::ProductState> products;
  StateCache<domain::CartState> carts;
  StateCache<domain::OrderState> orders;
  StateCache<domain::PaymentState> payments;
  StateCache<domain::SessionState> sessions;
  std::string dummy_hash;  // verified against when an e-mail is unknown, so timing says nothing

  long long now_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
  }

  // The pair of a session: an access token and the refresh token `refresh_id`, both naming it.
  Tokens issue(const std::string& user_id, const std::vector<std::string>& roles,
               const std::string& session_id, const std::string& refresh_id, long long now,
               const ServiceOptions& o) const {
    Tokens t;
    t.access = jwt.sign({.user_id = user_id,
                         .roles = roles,
                         .type = "access",
                         .token_id = new_uuid(),
                         .expires_at = now + o.access_ttl_seconds,
                         .session_id = session_id});
    t.refresh = jwt.sign({.user_id = user_id,
                          .roles = roles,
                          .type = "refresh",
                          .token_id = refresh_id,
                          .expires_at = now + o.refresh_ttl_seconds,
                          .session_id = session_id});
    t.expires_in = o.access_ttl_seconds;
    t.session_id = session_id;
    return t;
  }

  // The claims of a valid refresh token, or invalid_token.
  infra::TokenClaims refresh_claims(const std::string& token) const {
    auto claims = jwt.verify(token, now_seconds());
    if (!claims || claims->type != "refresh" || !is_uuid(claims->user_id) ||
        !is_uuid(claims->session_id) || !is_uuid(claims->token_id)) {
      reject({"invalid_token", "the refresh token is invalid or has expired"});
    }
    return *claims;
  }

  // Runs a command in one statement (see Unit): attempt after attempt while the store reports a
  // concurrent change (then on states read from the store), and once more on states read from
  // the store when an attempt on cached states was rejected or decided to do nothing.
  template <class F>
  auto run(const Context& ctx, F&& attempt) -> decltype(attempt(std::declval<Unit&>())) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    bool fresh = false;
    for (int n = 1;; ++n) {
      Unit u(store, ctx, clock, fresh);
      try {
        auto out = attempt(u);
        if (!u.unconfirmed()) return out;
        fresh = true;
        continue;
      } catch (const CommandRejected&) {
        if (!u.unconfirmed()) throw;
        fresh = true;
        continue;
      } catch (const infra::ConcurrencyConflict&) {
        if (n >= max_attempts) reject({"concurrency_conflict", "too many concurrent changes"});
      } catch (const pqxx::transaction_rollback&) {  // deadlock or serialization failure
        if (n >= max_attempts) reject({"concurrency_conflict", "too many concurrent changes"});
      }
      fresh = true;
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % (200u * std::min(n, 10))));
    }
  }

  // Order numbers come from a sequence, a block at a time, so that placing an order costs no
  // extra round trip. Numbers are unique; a restart leaves a gap of at most one block.
  std::string next_order_number() {
    std::lock_guard lock(numbers_mutex);
    if (numbers.empty()) {
      auto lease = store.pool().acquire();
      pqxx::nontransaction tx(*lease);
      for (const auto& row :
           tx.exec("SELECT nextval('order_numbers') FROM generate_series(1, 32) ORDER BY 1")) {
        numbers.push_back(row[0].as<std::int64_t>());
      }
      std::reverse(numbers.begin(), numbers.end());
    }
    const auto n = numbers.back();
    numbers.pop_back();
    return "SO-" + std::to_string(n);
  }
  std::mutex numbers_mutex;
  std::vector<std::int64_t> numbers;

  // Runs one transaction after another while the store reports a concurrent change.
  template <class F>
  auto retrying(F&& attempt) -> decltype(attempt()) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    for (int n = 1;; ++n) {
      try {
        return attempt();
      } catch (const infra::ConcurrencyConflict&) {
        if (n >= max_attempts) reject({"concurrency_conflict", "too many concurrent changes"});
      } catch (const pqxx::transaction_rollback&) {  // deadlock or serialization failure
        if (n >= max_attempts) reject({"concurrency_conflict", "too many concurrent changes"});
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % (200u * std::min(n, 10))));
    }
  }

  std::map<std::string, domain::ProductState> load_products(Unit& u,
                                                            std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());  // one lock order for every command: no deadlocks
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::map<std::string, domain::ProductState> out;
    for (const auto& id : ids) out[id] = u.load(products, ev::stream("product", id), true).state;
    return out;
  }
};

CommandService::CommandService(infra::EventStore& store, const infra::JwtCodec& jwt,
                               const Clock& clock, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, jwt, clock)), options_(std::move(options)) {
  impl_->max_attempts = options_.max_attempts;
  impl_->dummy_hash = infra::hash_password(new_uuid());
}

CommandService::~CommandService() = default;

// ---------------------------------------------------------------------------------- identity

Written CommandService::register_user(const std::string& email_in, const std::string& password,
                                      const std::string& name,
                                      const std::vector<std::string>& roles, const Context& ctx) {
  if (auto weak = domain::check_password(password, normalize_email(email_in))) reject(*weak);
  const std::string hash = infra::hash_password(password);  // slow on purpose: outside the lock
  return register_user_with_password_hash(email_in, hash, name, roles, ctx);
}

// The seeding entry point (see service.h); register_user is this after hashing the password.
Written CommandService::register_user_with_password_hash(const std::string& email_in,
                                                         const std::string& hash,
                                                         const std::string& name,
                                                         const std::vector<std::string>& roles,
                                                         const Context& ctx) {
  // A hash in any other form would make the account one that can never sign in.
  if (!hash.starts_with("$argon2id$")) {
    throw std::invalid_argument("the password hash is not an argon2id hash string");
  }
  const std::string email = normalize_email(email_in);
  const std::string user_id = new_uuid();
  return impl_->retrying([&] {
    auto s = impl_->store.begin();
    Unit u(*s, ctx, impl_->clock);
    auto user = u.load(impl_->users, ev::stream("user", user_id), true);
    try {
      s->claim_unique("email", email, user_id);
    } catch (const infra::UniqueClaimTaken&) {
      reject({"email_taken", "an account with this e-mail already exists"});
    }
    auto evs = checked(domain::decide(user.state, domain::RegisterUser{user_id, email, name, roles}));
    auto r = u.append(evs);
    s->tx().exec_params("INSERT INTO user_credentials (user_id, password_hash) VALUES ($1, $2)",
                        user_id, hash);
    u.commit();
    return written(user, r, user_id);
  });
}

std::optional<domain::UserState> CommandService::find_user_by_email(const std::string& email) {
  auto s = impl_->store.begin();
  auto owner = s->unique_owner("email", normalize_email(email));
  if (!owner) return std::nullopt;
  Context ctx = Context::make(std::nullopt);
  Unit u(*s, ctx, impl_->clock);
  auto user = u.load(impl_->users, ev::stream("user", *owner), false);
  if (!user.state.exists) return std::nullopt;
  return user.state;
}

Tokens CommandService::login(const std::string& email, const std::string& password) {
  std::optional<std::string> user_id;
  std::string hash = impl_->dummy_hash;
  domain::UserState user;
  {
    auto s = impl_->store.begin();
    user_id = s->unique_owner("email", normalize_email(email));
    if (user_id) {
      auto r = s->tx().exec_params("SELECT password_hash FROM user_credentials WHERE user_id = $1",
                                   *user_id);
      if (!r.empty()) hash = r[0][0].c_str();
      Context ctx = Context::make(std::nullopt);
      Unit u(*s, ctx, impl_->clock);
      user = u.load(impl_->users, ev::stream("user", *user_id), false).state;
    }
  }
  // Verify even when the e-mail is unknown, so that both answers take the same time.
  const bool ok = infra::verify_password(password, hash);
  if (!ok || !user_id || !user.exists) {
    reject({"invalid_credentials", "e-mail or password is wrong"});
  }
  return start_session(user.id, Context::make(user.id));
}

// ---------------------------------------------------------------------------------- sessions

namespace {
std::string time_of(long long seconds) {
  return format_time(Timestamp{std::chrono::seconds{seconds}});
}
}  // namespace

Tokens CommandService::start_session(const std::string& user_id, const Context& ctx) {
  const std::string session_id = new_uuid();
  const std::string refresh_id = new_uuid();
  const long long now = impl_->now_seconds();
  const std::string expires_at = time_of(now + options_.refresh_ttl_seconds);
  std::vector<std::string> roles;
  const auto w = impl_->run(ctx, [&](Unit& u) {
    auto user = u.load(impl_->users, ev::stream("user", user_id), false);
    if (!user.state.exists) reject({"not_found", "user not found"});
    roles = user.state.roles;
    auto self = u.create(impl_->sessions, ev::stream("session", session_id));
    auto r = u.append(checked(domain::decide(
        self.state, domain::StartSession{session_id, user_id, refresh_id, expires_at})));
    u.commit();
    return written(self, r, session_id);
  });
  Tokens t = impl_->issue(user_id, roles, session_id, refresh_id, now, options_);
  t.position = w.position;
  return t;
}

Tokens CommandService::refresh(const std::string& refresh_token, const Context& ctx) {
  const auto claims = impl_->refresh_claims(refresh_token);
  const std::string new_refresh_id = new_uuid();
  const long long now = impl_->now_seconds();
  const std::string expires_at = time_of(now + options_.refresh_ttl_seconds);
  std::vector<std::string> roles;
  bool reused = false;
  std::string session_expiry;
  const auto w = impl_->run(ctx, [&](Unit& u) {
    auto user = u.load(impl_->users, ev::stream("user", claims.user_id), false);
    auto session = u.load(impl_->sessions, ev::stream("session", claims.session_id), true);
    if (!user.state.exists) reject({"invalid_token", "the refresh token is invalid"});
    auto evs = checked(domain::decide(
        session.state,
        domain::RotateRefreshToken{claims.user_id, claims.token_id, new_refresh_id, expires_at}));
    reused = domain::revokes_session(evs);
    roles = user.state.roles;
    session_expiry = session.state.expires_at;
    auto r = u.append(std::move(evs));
    u.commit();
    return written(session, r, claims.session_id);
  });
  if (reused) {
    if (options_.on_revoked) options_.on_revoked(claims.session_id, session_expiry);
    log::warn("a spent refresh token of session {} was presented again: session revoked",
              claims.session_id);
    reject({"refresh_token_reused",
            "this refresh token has already been used; the session has been ended, sign in "
            "again"});
  }
  Tokens t = impl_->issue(claims.user_id, roles, claims.session_id, new_refresh_id, now, options_);
  t.position = w.position;
  return t;
}

Written CommandService::logout(const std::string& refresh_token, const Context& ctx) {
  const auto claims = impl_->refresh_claims(refresh_token);
  std::string session_expiry;
  bool revoked = false;
  const auto w = impl_->run(ctx, [&](Unit& u) {
    auto session = u.load(impl_->sessions, ev::stream("session", claims.session_id), true);
    auto d = domain::decide(session.state, domain::RevokeSession{claims.user_id, "logout"});
    if (!d.ok()) reject({"invalid_token", "the refresh token is invalid"});
    revoked = !d.value().empty();
    session_expiry = session.state.expires_at;
    auto r = u.append(std::move(d.value()));
    u.commit();
    return written(session, r, claims.session_id);
  });
  if (revoked && options_.on_revoked) options_.on_revoked(claims.session_id, session_expiry);
  return w;
}

Written CommandService::logout_all(const std::string& user_id, const Context& ctx,
                                   std::int64_t* revoked_count) {
  // The user's sessions, from the event store (the write side never reads the read models). A
  // session that starts after this read is not ended: it started after the logout.
  std::vector<std::string> ids;
  {
    auto lease = impl_->store.pool().acquire();
    pqxx::read_transaction tx(*lease);
    for (const auto& row :
         tx.exec_params("SELECT data->>'session_id' FROM events WHERE type = 'SessionStarted' "
                        "AND data->>'user_id' = $1 ORDER BY 1",
                        user_id)) {
      ids.emplace_back(row[0].c_str());
    }
  }
  const auto now = impl_->clock.now();
  std::vector<std::pair<std::string, std::string>> ended;  // id, expiry
  auto w = impl_->run(ctx, [&](Unit& u) {
    ended.clear();
    Events evs;
    std::int64_t last_position = 0;
    for (const auto& id : ids) {
      auto session = u.load(impl_->sessions, ev::stream("session", id), true);
      last_position = std::max(last_position, session.position);
      const auto expiry = parse_time(session.state.expires_at);
      if (expiry && *expiry <= now) continue;  // over anyway
      auto d = checked(domain::decide(session.state, domain::RevokeSession{user_id, "logout_all"}));
      if (!d.empty()) ended.emplace_back(id, session.state.expires_at);
      for (auto& e : d) evs.push_back(std::move(e));
    }
    auto r = u.append(std::move(evs));
    u.commit();
    Written out{user_id, 0, last_position};
    for (const auto& [stream, position] : r.positions)
      out.position = std::max(out.position, position);
    return out;
  });
  if (options_.on_revoked) {
    for (const auto& [id, expiry] : ended) options_.on_revoked(id, expiry);
  }
  if (revoked_count) *revoked_count = static_cast<std::int64_t>(ended.size());
  return w;
}

// ----------------------------------------------------------------------------------- account

namespace {

// The ids of the user's sessions, from the event store (the write side never reads the read
// models), in stream id order: the order in which the store takes stream locks.
std::vector<std::string> session_ids_of(infra::EventStore& store, const std::string& user_id) {
  std::vector<std::string> ids;
  auto lease = store.pool().acquire();
  pqxx::read_transaction tx(*lease);
  for (const auto& row :
       tx.exec_params("SELECT data->>'session_id' FROM events WHERE type = 'SessionStarted' "
                      "AND data->>'user_id' = $1 ORDER BY 1",
                      user_id)) {
    ids.emplace_back(row[0].c_str());
  }
  return ids;
}

std::int64_t last_position(const infra::AppendResult& r, std::int64_t otherwise) {
  std::int64_t out = otherwise;
  for (const auto& [stream, position] : r.positions) out = std::max(out, position);
  return out;
}

// The sessions SessionRevoked events of a decision end, with their refresh expiry (for the
// process's revocation list).
std::vector<std::pair<std::string, std::string>> ended_sessions(
    const Events& evs, const domain::UserSessions& sessions) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : evs) {
    if (const auto* r = std::get_if<ev::SessionRevoked>(&e)) {
      auto it = sessions.find(r->session_id);
      out.emplace_back(r->session_id, it == sessions.end() ? "" : it->second.expires_at);
    }
  }
  return out;
}

}  // namespace

Written CommandService::change_profile(const std::string& user_id, const domain::ChangeProfile& c,
                                       const Context& ctx) {
  return impl_->retrying([&] {
    auto s = impl_->store.begin();
    Unit u(*s, ctx, impl_->clock);
    auto user = u.load(impl_->users, ev::stream("user", user_id), true);
    auto evs = checked(domain::decide(user.state, c));
    for (const auto& e : evs) {
      const auto* changed = std::get_if<ev::UserProfileChanged>(&e);
      if (!changed || (!changed->phone && !changed->phone_removed)) continue;
      if (user.state.phone) s->release_unique("phone", *user.state.phone, user_id);
      if (!changed->phone) continue;
      try {
        s->claim_unique("phone", *changed->phone, user_id);
      } catch (const infra::UniqueClaimTaken&) {
        // A claim of this account's own (left by an earlier change) is no conflict.
        if (s->unique_owner("phone", *changed->phone) != user_id) {
          reject({"phone_taken", "another account already has this phone number"});
        }
      }
    }
    auto r = u.append(evs);
    u.commit();
    return written(user, r, user_id);
  });
}

Written CommandService::change_password(const std::string& user_id,
                                        const std::string& keep_session_id,
                                        const std::string& current_password,
                                        const std::string& new_password, const Context& ctx,
                                        std::int64_t* revoked_count) {
  // The current hash and the account's e-mail address, read without locks: verifying and hashing
  // are slow on purpose, so they happen before the transaction.
  std::string hash;
  domain::UserState user;
  {
    auto s = impl_->store.begin();
    auto r = s->tx().exec_params("SELECT password_hash FROM user_credentials WHERE user_id = $1",
                                 user_id);
    if (!r.empty()) hash = r[0][0].c_str();
    Unit u(*s, ctx, impl_->clock);
    user = u.load(impl_->users, ev::stream("user", user_id), false).state;
  }
  if (!user.exists) reject({"not_found", "user not found"});
  // Verified even without a stored password, so that both answers take the same time.
  const bool ok = infra::verify_password(current_password, hash.empty() ? impl_->dummy_hash : hash);
  if (!ok || hash.empty()) {
    reject({"wrong_password", "the current password is wrong"});
  }
  if (auto weak = domain::check_password(new_password, user.email)) {
    for (auto& d : weak->details) {
      if (d.starts_with("password:")) d = "new_" + d;
    }
    reject(*weak);
  }
  const std::string new_hash = infra::hash_password(new_password);
  // A session that starts after this read is not ended: it started after the change.
  const auto ids = session_ids_of(impl_->store, user_id);
  const auto now = impl_->clock.now();
  std::vector<std::pair<std::string, std::string>> ended;
  auto w = impl_->retrying([&] {
    auto s = impl_->store.begin();
    Unit u(*s, ctx, impl_->clock);
    // Locks in stream id order, as the one-statement append takes them: session-..., user-...
    domain::UserSessions live;
    std::int64_t seen = 0;
    for (const auto& id : ids) {
      auto session = u.load(impl_->sessions, ev::stream("session", id), true);
      seen = std::max(seen, session.position);
      const auto expiry = parse_time(session.state.expires_at);
      if (expiry && *expiry <= now) continue;  // over anyway
      live.emplace(id, session.state);
    }
    auto self = u.load(impl_->users, ev::stream("user", user_id), true);
    // Changed meanwhile (the user stream's lock serialises every writer of the hash): the
    // password given must be the one stored now.
    auto r = s->tx().exec_params("SELECT password_hash FROM user_credentials WHERE user_id = $1",
                                 user_id);
    const std::string stored = r.empty() ? std::string() : r[0][0].c_str();
    if (stored != hash && (stored.empty() || !infra::verify_password(current_password, stored))) {
      reject({"wrong_password", "the current password is wrong"});
    }
    auto evs = checked(domain::decide(self.state, domain::ChangePassword{keep_session_id}, live));
    ended = ended_sessions(evs, live);
    auto appended = u.append(evs);
    s->tx().exec_params("UPDATE user_credentials SET password_hash = $2 WHERE user_id = $1",
                        user_id, new_hash);
    u.commit();
    Written out = written(self, appended, user_id);
    out.position = last_position(appended, std::max(out.position, seen));
    return out;
  });
  if (options_.on_revoked) {
    for (const auto& [id, expiry] : ended) options_.on_revoked(id, expiry);
  }
  if (revoked_count) *revoked_count = static_cast<std::int64_t>(ended.size());
  return w;
}

Written CommandService::set_roles(const std::string& user_id, const std::vector<std::string>& roles,
                                  const std::string& actor_id, const Context& ctx,
                                  std::int64_t* revoked_count) {
  // A session that starts after this read is not ended; it carries the new roles.
  std::optional<std::vector<std::string>> ids;
  const auto now = impl_->clock.now();
  std::vector<std::pair<std::string, std::string>> ended;
  auto w = impl_->run(ctx, [&](Unit& u) {
    ended.clear();
    auto user = u.load(impl_->users, ev::stream("user", user_id), true);
    domain::UserSessions live;
    // The sessions matter only when a role is taken away.
    if (const auto wanted = domain::role_set(roles);
        user.state.exists && wanted && domain::removes_a_role(user.state.roles, *wanted)) {
      if (!ids) ids = session_ids_of(impl_->store, user_id);
      for (const auto& id : *ids) {
        auto session = u.load(impl_->sessions, ev::stream("session", id), true);
        const auto expiry = parse_time(session.state.expires_at);
        if (expiry && *expiry <= now) continue;  // over anyway
        live.emplace(id, session.state);
      }
    }
    auto evs = checked(domain::decide(user.state, domain::SetRoles{actor_id, roles}, live));
    ended = ended_sessions(evs, live);
    auto r = u.append(evs);
    u.commit();
    Written out = written(user, r, user_id);
    out.position = last_position(r, out.position);
    return out;
  });
  if (options_.on_revoked) {
    for (const auto& [id, expiry] : ended) options_.on_revoked(id, expiry);
  }
  if (revoked_count) *revoked_count = static_cast<std::int64_t>(ended.size());
  return w;
}

// ----------------------------------------------------------------------------------- catalog

Written CommandService::create_category(const domain::CreateCategory& c, const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    domain::CategoryState parent;
    if (c.parent_id) {
      parent = u.load(impl_->categories, ev::stream("category", *c.parent_id), false).state;
    }
    auto self = u.load(impl_->categories, ev::stream("category", c.category_id), true);
    auto r = u.append(checked(domain::decide(self.state, c, parent)));
    u.commit();
    return written(self, r, c.category_id);
  });
}

Written CommandService::create_product(const domain::CreateProduct& c, const Context& ctx) {
  return impl_->retrying([&] {
    auto s = impl_->store.begin();
    Unit u(*s, ctx, impl_->clock);
    auto category = u.load(impl_->categories, ev::stream("category", c.category_id), false);
    auto self = u.load(impl_->products, ev::stream("product", c.product_id), true);
    auto evs = checked(domain::decide(self.state, c, category.state));
    try {
      s->claim_unique("sku", c.sku, c.product_id);
    } catch (const infra::UniqueClaimTaken&) {
      reject({"sku_taken", "another product already has SKU " + c.sku});
    }
    auto r = u.append(evs);
    u.commit();
    return written(self, r, c.product_id);
  });
}

namespace {
void check_version(std::optional<std::int64_t> expected, std::int64_t actual) {
  if (expected && *expected != actual) {
    reject({"version_mismatch", "the resource has changed (version " + std::to_string(actual) +
                                    ", If-Match " + std::to_string(*expected) + ")"});
  }
}
}  // namespace

Written CommandService::update_product(const std::string& id, const domain::UpdateProduct& c,
                                       std::optional<std::int64_t> absolute_stock,
                                       std::optional<std::int64_t> expected_version,
                                       const Context& ctx) {
  return impl_->retrying([&] {
    auto s = impl_->store.begin();
    Unit u(*s, ctx, impl_->clock);
    auto self = u.load(impl_->products, ev::stream("product", id), true);
    if (!self.state.exists || self.state.discontinued) reject({"not_found", "product not found"});
    check_version(expected_version, self.version);
    domain::CategoryState category;
    if (c.category_id) {
      category = u.load(impl_->categories, ev::stream("category", *c.category_id), false).state;
    }
    auto evs = checked(domain::decide(self.state, c, category));
    if (absolute_stock) {
      auto after = self.state;
      for (const auto& e : evs) after = domain::evolve(std::move(after), e);
      for (auto& e : checked(domain::decide(after, domain::AdjustStock{*absolute_stock -
                                                                         after.stock}))) {
        evs.push_back(std::move(e));
      }
    }
    if (c.sku && *c.sku != self.state.sku) {
      s->release_unique("sku", self.state.sku, id);
      try {
        s->claim_unique("sku", *c.sku, id);
      } catch (const infra::UniqueClaimTaken&) {
        reject({"sku_taken", "another product already has SKU " + *c.sku});
      }
    }
    auto r = u.append(evs);
    u.commit();
    return written(self, r, id);
  });
}

Written CommandService::adjust_stock(const std::string& id, std::int64_t delta, const Context& ctx,
                                     std::int64_t* stock_after) {
  return impl_->run(ctx, [&](Unit& u) {
    auto self = u.load(impl_->products, ev::stream("product", id), true);
    auto evs = checked(domain::decide(self.state, domain::AdjustStock{delta}));
    auto r = u.append(evs);
    u.commit();
    if (stock_after) *stock_after = self.state.stock + delta;
    return written(self, r, id);
  });
}

Written CommandService::discontinue_product(const std::string& id,
                                            std::optional<std::int64_t> expected_version,
                                            const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto self = u.load(impl_->products, ev::stream("product", id), true);
    if (self.state.exists) check_version(expected_version, self.version);
    auto r = u.append(checked(domain::decide(self.state, domain::DiscontinueProduct{})));
    u.commit();
    return written(self, r, id);
  });
}

// -------------------------------------------------------------------------------------- cart

Written CommandService::add_cart_item(const std::string& user_id, const std::string& product_id,
                                      std::int64_t quantity, const Context& ctx,
                                      std::int64_t* line_quantity) {
  return impl_->run(ctx, [&](Unit& u) {
    auto cart = u.load(impl_->carts, ev::stream("cart", user_id), true);
    // The product is only read: carts never lock products, so a popular product does not
    // serialise everyone's add-to-cart.
    auto product = u.load(impl_->products, ev::stream("product", product_id), false);
    auto evs = checked(domain::decide(cart.state, domain::AddCartItem{user_id, product_id, quantity},
                                      product.state));
    auto r = u.append(evs);
    u.commit();
    if (line_quantity) *line_quantity = std::get<ev::CartItemAdded>(evs.front()).line_quantity;
    return written(cart, r, user_id);
  });
}

Written CommandService::change_cart_item(const std::string& user_id, const std::string& product_id,
                                         std::int64_t quantity, const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto cart = u.load(impl_->carts, ev::stream("cart", user_id), true);
    auto product = u.load(impl_->products, ev::stream("product", product_id), false);
    auto r = u.append(checked(domain::decide(
        cart.state, domain::ChangeCartItemQuantity{user_id, product_id, quantity}, product.state)));
    u.commit();
    return written(cart, r, user_id);
  });
}

Written CommandService::remove_cart_item(const std::string& user_id, const std::string& product_id,
                                         const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto cart = u.load(impl_->carts, ev::stream("cart", user_id), true);
    auto r = u.append(
        checked(domain::decide(cart.state, domain::RemoveCartItem{user_id, product_id})));
    u.commit();
    return written(cart, r, user_id);
  });
}

// ------------------------------------------------------------------------------------ orders

namespace {
constexpr const char* kIdempotencyScope = "orders";

std::optional<OrderPlacedResult> stored_checkout(infra::EventStore& store,
                                                 const std::string& user_id,
                                                 const std::string& key) {
  auto lease = store.pool().acquire();
  pqxx::nontransaction tx(*lease);
  auto r = tx.exec_params(
      "SELECT response, position FROM idempotency_keys "
      "WHERE scope = $1 AND key = $2 AND position > 0",
      std::string(kIdempotencyScope) + ":" + user_id, key);
  if (r.empty()) return std::nullopt;
  json::Document d;
  if (!json::parse(r[0][0].c_str(), d).empty()) return std::nullopt;
  OrderPlacedResult out;
  out.order_id = json::get_string(d, "order_id");
  out.order_number = json::get_string(d, "order_number");
  out.currency = json::get_string(d, "currency");
  out.total = json::get_int(d, "total");
  out.position = r[0][1].as<std::int64_t>();
  out.replayed = true;
  return out;
}

std::string checkout_answer(const std::string& order_id, const std::string& number,
                            const std::string& currency, std::int64_t total) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("order_id");
  w.String(order_id);
  w.Key("order_number");
  w.String(number);
  w.Key("currency");
  w.String(currency);
  w.Key("total");
  w.Int64(total);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}
}  // namespace

// The order, a stock reservation on every product and the cart's checkout are one append; the
// idempotency key, when given, is stored by that same append, so a key is used by exactly one
// order (the store refuses a second use, and the request then answers with the first order).
OrderPlacedResult CommandService::place_order(const std::string& user_id,
                                              const std::optional<std::string>& key,
                                              const Context& ctx) {
  const std::string scope = std::string(kIdempotencyScope) + ":" + user_id;
  for (;;) {
    if (key) {
      if (auto stored = stored_checkout(impl_->store, user_id, *key)) return *stored;
    }
    try {
      return impl_->run(ctx, [&](Unit& u) {
        auto cart = u.load(impl_->carts, ev::stream("cart", user_id), true);
        std::vector<std::string> ids;
        for (const auto& line : cart.state.lines) ids.push_back(line.product_id);
        auto products = impl_->load_products(u, ids);
        const std::string order_id = new_uuid();
        auto evs = checked(domain::decide(
            cart.state, domain::PlaceOrder{order_id, "", user_id, options_.currency}, products));
        // Numbered only once the order is accepted, so that refused checkouts use up no numbers.
        auto& placed = std::get<ev::OrderPlaced>(evs.front());
        placed.order_number = impl_->next_order_number();
        u.create(impl_->orders, ev::stream("order", order_id));
        std::optional<infra::IdempotencyRecord> record;
        if (key) {
          record = infra::IdempotencyRecord{
              scope, *key, "POST /api/orders", 201,
              checkout_answer(order_id, placed.order_number, options_.currency, placed.total)};
        }
        OrderPlacedResult out{order_id, placed.order_number, options_.currency, placed.total, 0,
                              false};
        try {
          out.position = u.append(evs, record).last_position;
        } catch (const infra::IdempotencyKeyUsed&) {
          throw IdempotentReplay{};
        }
        u.commit();
        return out;
      });
    } catch (const IdempotentReplay&) {
      // Another request with this key finished first: loop to answer with its stored result.
    } catch (const CommandRejected&) {
      // A request with this key that placed its order while this one was deciding emptied the
      // cart in the same append that stored the key: its answer is this request's answer.
      if (key) {
        if (auto stored = stored_checkout(impl_->store, user_id, *key)) return *stored;
      }
      throw;
    }
  }
}

Written CommandService::cancel_order(const std::string& order_id, const std::string& user_id,
                                     bool as_staff, const std::string& reason,
                                     const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto order = u.load(impl_->orders, ev::stream("order", order_id), true);
    if (!order.state.exists || (!as_staff && order.state.user_id != user_id)) {
      reject({"not_found", "order not found"});
    }
    std::vector<std::string> ids;
    for (const auto& line : order.state.lines) ids.push_back(line.product_id);
    auto products = impl_->load_products(u, ids);
    auto r = u.append(checked(domain::decide(
        order.state, domain::CancelOrder{reason.empty() ? "cancelled by customer" : reason},
        products)));
    u.commit();
    return written(order, r, order_id);
  });
}

Written CommandService::ship_order(const std::string& order_id, const domain::ShipOrder& c,
                                   const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto order = u.load(impl_->orders, ev::stream("order", order_id), true);
    auto r = u.append(checked(domain::decide(order.state, c)));
    u.commit();
    return written(order, r, order_id);
  });
}

Written CommandService::deliver_order(const std::string& order_id, const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto order = u.load(impl_->orders, ev::stream("order", order_id), true);
    auto r = u.append(checked(domain::decide(order.state, domain::DeliverOrder{})));
    u.commit();
    return written(order, r, order_id);
  });
}

// ---------------------------------------------------------------------------------- payments

PaymentStarted CommandService::start_payment(const std::string& order_id,
                                             const std::string& user_id, bool as_staff,
                                             const std::string& provider, const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto order = u.load(impl_->orders, ev::stream("order", order_id), true);
    if (!order.state.exists || (!as_staff && order.state.user_id != user_id)) {
      reject({"not_found", "order not found"});
    }
    const std::string payment_id = new_uuid();
    auto evs = checked(domain::decide(order.state, domain::InitiatePayment{payment_id, provider}));
    u.create(impl_->payments, ev::stream("payment", payment_id));
    auto r = u.append(evs);
    u.commit();
    return PaymentStarted{payment_id, order.state.total, r.last_position, order.state.currency};
  });
}

PaymentSettled CommandService::settle_payment(const std::string& payment_id,
                                              const domain::SettlePayment& c, const Context& ctx) {
  return impl_->run(ctx, [&](Unit& u) {
    auto payment = u.load(impl_->payments, ev::stream("payment", payment_id), true);
    if (!payment.state.exists) reject({"not_found", "payment not found"});
    auto order = u.load(impl_->orders, ev::stream("order", payment.state.order_id), true);
    auto evs = checked(domain::decide(payment.state, c, order.state));
    auto r = u.append(evs);
    u.commit();
    auto after = payment.state;
    for (const auto& e : evs) after = domain::evolve(std::move(after), e);
    return PaymentSettled{payment_id, after.status, written(payment, r, payment_id).position};
  });
}

}  // namespace shop::command
