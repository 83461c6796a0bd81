// The command API over HTTP: request validation (JSON Schemas), authentication, and the mapping
// of each endpoint onto the CommandService. Errors become HTTP statuses in errors.cpp only.
#pragma once

#include <memory>
#include <string>

#include "shop/command/service.h"
#include "shop/infra/auth.h"
#include "shop/infra/config.h"
#include "shop/infra/http.h"
#include "shop/infra/pg.h"

namespace shop::command {

struct ApiOptions {
  std::string webhook_secret;
  std::string currency = "USD";
  // Where POST /api/admin/projections/{name}/rebuild records its request (the projections
  // registry); none: that route answers 503.
  infra::ConnectionPool* registry = nullptr;
};

class CommandApi {
 public:
  CommandApi(CommandService& service, const infra::Authenticator& auth, ApiOptions options);
  http::Response handle(http::Request& req) const;

 private:
  http::Router router_;
  CommandService& service_;
  const infra::Authenticator& auth_;
  ApiOptions options_;
};

// Maps a refused command onto its HTTP status and JSON error: the one place that does.
http::Error to_http_error(const domain::DomainError& e);

// Everything a command-api process holds: configuration, database pool, store, crypto, API.
class CommandApp {
 public:
  explicit CommandApp(const infra::Config& config);
  ~CommandApp();
  CommandService& service();
  http::Response handle(http::Request& req) const;
  http::ServerOptions server_options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::command
