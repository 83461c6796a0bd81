#include "shop/infra/http.h"

#include <algorithm>
#include <cctype>

#include "shop/events/json.h"
#include "shop/infra/log.h"

namespace shop::http {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}
}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

Response json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response error_response(const Error& e) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("error");
  w.StartObject();
  w.Key("code");
  w.String(e.code);
  w.Key("message");
  w.String(e.message);
  w.Key("details");
  w.StartArray();
  for (const auto& d : e.details) w.String(d);
  w.EndArray();
  w.EndObject();
  w.EndObject();
  Response r = json(e.status, std::string(buf.GetString(), buf.GetSize()));
  for (const auto& h : e.headers) r.headers.push_back(h);
  return r;
}

std::optional<std::string> url_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

void parse_target(Request& req) {
  std::string_view target = req.target;
  auto q = target.find('?');
  auto path = url_decode(target.substr(0, q), false);
  if (!path) throw Error(400, "bad_request", "malformed path encoding");
  req.path = std::move(*path);
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq), true);
    auto value = url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                            true);
    if (!key || !value) throw Error(400, "bad_request", "malformed query encoding");
    req.query[*key] = std::move(*value);
  }
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back({std::move(method), split_path(pattern), std::move(handler)});
}

Response Router::handle(Request& req) const {
  const auto segments = split_path(req.path);
  std::string allowed;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const auto& p = route.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        params[p.substr(1, p.size() - 2)] = segments[i];
      } else {
        match = p == segments[i];
      }
    }
    if (!match) continue;
    if (route.method != req.method && !(route.method == "GET" && req.method == "HEAD")) {
      allowed += (allowed.empty() ? "" : ", ") + route.method;
      continue;
    }
    req.params = std::move(params);
    return route.handler(req);
  }
  if (!allowed.empty()) {
    Error e(405, "method_not_allowed", "method " + req.method + " not allowed here");
    e.headers.emplace_back("Allow", allowed);
    throw e;
  }
  throw Error(404, "not_found", "no such resource: " + req.path);
}

Response dispatch(const Handler& handler, Request& req, const ServerOptions& options) {
  Response res;
  if (req.method == "OPTIONS") {
    res.status = 204;
    res.content_type.clear();
    res.with_header("Access-Control-Allow-Methods", "GET, POST, PATCH, PUT, DELETE, OPTIONS")
        .with_header("Access-Control-Allow-Headers",
                     "Authorization, Content-Type, Idempotency-Key, If-Match, X-Min-Position, "
                     "X-Request-Id, X-Correlation-Id")
        .with_header("Access-Control-Max-Age", "600");
  } else {
    try {
      parse_target(req);
      res = handler(req);
    } catch (const Error& e) {
      res = error_response(e);
    } catch (const std::exception& e) {
      log::error("{} {} failed: {}", req.method, req.target, e.what());
      res = error_response(Error(500, "internal", "internal error"));
    }
  }
  res.with_header("Access-Control-Allow-Origin", options.cors_origin)
      .with_header("Access-Control-Expose-Headers", "ETag, Location, Retry-After, X-Position");
  if (options.cors_origin != "*") res.with_header("Vary", "Origin");
  return res;
}

}  // namespace shop::http
