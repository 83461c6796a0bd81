// The HTTP layer's public face: plain request/response values, one error type mapped to JSON in
// one place, a router with {param} segments, and a server. No Beast in this header: handlers are
// plain functions of a Request, testable without a socket.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shop::http {

struct Request {
  std::string method;  // upper case
  std::string target;  // path and query as received
  std::string path;    // decoded path without the query
  std::map<std::string, std::string> query;   // decoded; a repeated key keeps the last value
  std::map<std::string, std::string> params;  // {param} segments matched by the router
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_address;

  // Case-insensitive header lookup.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  Response& with_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

// Any failure a client caused or should know about. Thrown by handlers; turned into
// {"error": {"code", "message", "details"}} with `status` by the server, and nowhere else.
struct Error : std::runtime_error {
  Error(int status_code, std::string error_code, std::string msg,
        std::vector<std::string> error_details = {})
      : std::runtime_error(msg),
        status(status_code),
        code(std::move(error_code)),
        message(std::move(msg)),
        details(std::move(error_details)) {}
  int status;
  std::string code;
  std::string message;
  std::vector<std::string> details;
  std::vector<std::pair<std::string, std::string>> headers;
};

Response json(int status, std::string body);
Response error_response(const Error& e);

// Decodes %XX and '+' (in queries). Returns nullopt on a malformed escape or a NUL byte.
std::optional<std::string> url_decode(std::string_view in, bool plus_is_space);
// Splits a target into path and query parameters; throws Error(400) on malformed encoding.
void parse_target(Request& req);

using Handler = std::function<Response(Request&)>;

class Router {
 public:
  // pattern: "/api/products/{id}"; a {name} segment matches one non-empty path segment.
  void add(std::string method, std::string pattern, Handler handler);
  // 404 for an unknown path, 405 (with Allow) for a known path with another method.
  Response handle(Request& req) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;  // 0 picks a free port
  int threads = 16;
  std::size_t body_limit = 1 << 20;
  std::chrono::seconds read_timeout{30};
  std::string cors_origin = "*";
  std::string service_name = "shop";
};

// Runs `handler` for every request, on `threads` threads. Handlers may block (database calls).
// Errors thrown by handlers become JSON: http::Error with its status, anything else 500 (logged).
class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();
  unsigned short port() const;  // the bound port
  // Serves until stop() or SIGINT/SIGTERM.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Handles one request the way the server does (CORS, error mapping), without a socket.
Response dispatch(const Handler& handler, Request& req, const ServerOptions& options);

}  // namespace shop::http
