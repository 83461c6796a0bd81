// What every handler of the query API shares: configuration, the database, who is calling,
// where the read models are, and the one way to answer a read (read your writes, X-Position,
// the response cache).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "read_db.h"
#include "shop/events/json.h"
#include "shop/infra/auth.h"
#include "shop/infra/crypto.h"
#include "shop/infra/http.h"
#include "shop/query/app.h"
#include "shop/query/cursor.h"
#include "shop/query/projection_state.h"

namespace shop::query {

class Context {
 public:
  Context(Options opts, const Clock& clock);

  const Options options;
  const int exponent;  // decimals of the store currency
  const infra::JwtCodec jwt;
  const infra::RevokedSessionCache revoked;  // the sessions whose access tokens are refused
  const infra::Authenticator auth;
  const CursorCodec cursors;
  ReadDb db;
  ProjectionState state;

  using Render = std::function<std::string()>;
  // Answers a read with the JSON body that `render` produces from the tables. First honours
  // X-Min-Position (waits until that event is projected, else 503 projection_lagging), or
  // refreshes the known checkpoint when it is stale. With a cache key, a body rendered at the
  // current checkpoint is reused until the checkpoint moves. Sets X-Position.
  http::Response read(const http::Request& req, const std::string* cache_key,
                      const Render& render);

  // Reads the checkpoint now (for /health).
  Checkpoint observe_now();
  // The checkpoint's max_position for an error response: refreshed if stale (quietly: the
  // database may be the very reason for the error).
  std::int64_t position_for_error();

 private:
  // The checkpoint that covers X-Min-Position, nullopt when the header is absent (or 0).
  std::optional<Checkpoint> wait_or_refresh(const http::Request& req);
  Checkpoint wait_until_projected(std::int64_t position);
  void refresh_if_due();
};

// Builds a JSON text with RapidJSON's writer.
class JsonOut {
 public:
  JsonOut() : writer_(buffer_) {}
  json::Writer& w() { return writer_; }
  std::string str() const { return std::string(buffer_.GetString(), buffer_.GetSize()); }

 private:
  rapidjson::StringBuffer buffer_;
  json::Writer writer_;
};

// Writes text (or null) of a result field / a string.
void write_field(json::Writer& w, const pqxx::field& f);
void write_text(json::Writer& w, std::string_view text);

http::Error not_found(const std::string& what);
http::Error invalid_cursor();

}  // namespace shop::query
