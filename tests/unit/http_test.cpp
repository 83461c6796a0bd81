// The HTTP layer without a socket: decoding targets, routing, and the error/CORS mapping.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "shop/events/json.h"
#include "shop/infra/http.h"

namespace {

namespace http = shop::http;

std::string header_of(const http::Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

int count_of(const http::Response& r, std::string_view name) {
  int n = 0;
  for (const auto& [k, v] : r.headers) n += k == name;
  return n;
}

http::Request request(std::string method, std::string target) {
  http::Request req;
  req.method = std::move(method);
  req.target = std::move(target);
  return req;
}

// The parsed {"error": {...}} of an error response.
struct ErrorBody {
  std::string code, message;
  std::vector<std::string> details;
  bool well_formed = false;
};

ErrorBody parse_error(const http::Response& r) {
  ErrorBody out;
  shop::json::Document doc;
  if (!shop::json::parse(r.body, doc).empty() || !doc.IsObject() || doc.MemberCount() != 1) {
    return out;
  }
  const auto* error = shop::json::member(doc, "error");
  if (!error || !error->IsObject() || error->MemberCount() != 3) return out;
  const auto* code = shop::json::member(*error, "code");
  const auto* message = shop::json::member(*error, "message");
  const auto* details = shop::json::member(*error, "details");
  if (!code || !code->IsString() || !message || !message->IsString() || !details ||
      !details->IsArray()) {
    return out;
  }
  out.code = code->GetString();
  out.message = message->GetString();
  for (const auto& d : details->GetArray()) {
    if (!d.IsString()) return out;
    out.details.emplace_back(d.GetString());
  }
  out.well_formed = true;
  return out;
}

// ------------------------------------------------------------------------------------ url_decode
TEST(UrlDecodeTest, DecodesEscapes) {
  EXPECT_EQ(http::url_decode("plain", false), "plain");
  EXPECT_EQ(http::url_decode("", false), "");
  EXPECT_EQ(http::url_decode("a%20b", false), "a b");
  EXPECT_EQ(http::url_decode("%41%42%43", false), "ABC");
  EXPECT_EQ(http::url_decode("%2f%2F", false), "//");
  EXPECT_EQ(http::url_decode("caf%C3%A9", false), "caf\xC3\xA9");
  EXPECT_EQ(http::url_decode("100%25", false), "100%");
}

TEST(UrlDecodeTest, PlusIsSpaceOnlyInQueries) {
  EXPECT_EQ(http::url_decode("a+b", true), "a b");
  EXPECT_EQ(http::url_decode("a+b", false), "a+b");
  // An escaped plus stays a plus.
  EXPECT_EQ(http::url_decode("a%2Bb", true), "a+b");
}

TEST(UrlDecodeTest, RejectsMalformedEscapes) {
  for (const char* bad : {"%", "%4", "abc%", "abc%4", "%zz", "%4g", "%g4", "%%41", "a%-1"}) {
    EXPECT_EQ(http::url_decode(bad, false), std::nullopt) << bad;
    EXPECT_EQ(http::url_decode(bad, true), std::nullopt) << bad;
  }
}

TEST(UrlDecodeTest, RejectsNul) {
  EXPECT_EQ(http::url_decode("a%00b", false), std::nullopt);
  EXPECT_EQ(http::url_decode(std::string_view("a\0b", 3), false), std::nullopt);
}

// ---------------------------------------------------------------------------------- parse_target
TEST(ParseTargetTest, SplitsPathAndQuery) {
  auto req = request("GET", "/api/products?q=red+mug&page=2&tag=%C3%A9t%C3%A9");
  http::parse_target(req);
  EXPECT_EQ(req.path, "/api/products");
  EXPECT_EQ(req.query.size(), 3u);
  EXPECT_EQ(req.query["q"], "red mug");
  EXPECT_EQ(req.query["page"], "2");
  EXPECT_EQ(req.query["tag"], "\xC3\xA9t\xC3\xA9");
}

TEST(ParseTargetTest, DecodesThePathButKeepsPlus) {
  auto req = request("GET", "/files/a%20b+c");
  http::parse_target(req);
  EXPECT_EQ(req.path, "/files/a b+c");
  EXPECT_TRUE(req.query.empty());
}

TEST(ParseTargetTest, QueryEdgeCases) {
  auto req = request("GET", "/x?&&a=1&flag&a=2&empty=&k%3D=v%26w");
  http::parse_target(req);
  EXPECT_EQ(req.path, "/x");
  EXPECT_EQ(req.query["a"], "2");  // the last value wins
  EXPECT_EQ(req.query.count("flag"), 1u);
  EXPECT_EQ(req.query["flag"], "");
  EXPECT_EQ(req.query["empty"], "");
  EXPECT_EQ(req.query["k="], "v&w");
  EXPECT_EQ(req.query.size(), 4u);

  auto bare = request("GET", "/x?");
  http::parse_target(bare);
  EXPECT_EQ(bare.path, "/x");
  EXPECT_TRUE(bare.query.empty());
}

void expect_400(const std::string& target) {
  auto req = request("GET", target);
  try {
    http::parse_target(req);
    ADD_FAILURE() << target << " was accepted";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 400) << target;
    EXPECT_EQ(e.code, "bad_request") << target;
  }
}

TEST(ParseTargetTest, MalformedEncodingIs400) {
  expect_400("/api/%zz");
  expect_400("/api/%4");
  expect_400("/api/%");
  expect_400("/api/a%00b");
  expect_400("/x?q=%zz");
  expect_400("/x?q=%");
  expect_400("/x?%zz=1");
  expect_400("/x?q=a%00");
  expect_400("/x?ok=1&bad=%G0");
}

// ---------------------------------------------------------------------------------------- Router
http::Response text(std::string body) {
  http::Response r;
  r.body = std::move(body);
  r.content_type = "text/plain";
  return r;
}

http::Router shop_router() {
  http::Router router;
  router.add("GET", "/api/products", [](http::Request&) { return text("list"); });
  router.add("POST", "/api/products", [](http::Request&) { return text("create"); });
  router.add("GET", "/api/products/{id}",
             [](http::Request& r) { return text("get " + r.params.at("id")); });
  router.add("PATCH", "/api/products/{id}",
             [](http::Request& r) { return text("patch " + r.params.at("id")); });
  router.add("PUT", "/api/carts/{user}/items/{product}", [](http::Request& r) {
    return text(r.params.at("user") + "/" + r.params.at("product"));
  });
  return router;
}

http::Response route(const http::Router& router, std::string method, std::string path) {
  auto req = request(std::move(method), path);
  req.path = path;
  return router.handle(req);
}

TEST(RouterTest, MatchesMethodAndPath) {
  const auto router = shop_router();
  EXPECT_EQ(route(router, "GET", "/api/products").body, "list");
  EXPECT_EQ(route(router, "POST", "/api/products").body, "create");
  EXPECT_EQ(route(router, "GET", "/api/products/").body, "list");
}

TEST(RouterTest, CapturesParams) {
  const auto router = shop_router();
  auto req = request("GET", "/api/products/abc-123");
  req.path = "/api/products/abc-123";
  EXPECT_EQ(router.handle(req).body, "get abc-123");
  EXPECT_EQ(req.params.size(), 1u);
  EXPECT_EQ(req.params["id"], "abc-123");
  EXPECT_EQ(route(router, "PATCH", "/api/products/p1").body, "patch p1");
  EXPECT_EQ(route(router, "PUT", "/api/carts/u1/items/p2").body, "u1/p2");
}

TEST(RouterTest, HeadIsServedByGet) {
  const auto router = shop_router();
  EXPECT_EQ(route(router, "HEAD", "/api/products").body, "list");
}

TEST(RouterTest, UnknownPathIs404) {
  const auto router = shop_router();
  for (const char* path :
       {"/", "/api", "/api/orders", "/api/products/1/extra", "/api/carts/u/x/p"}) {
    try {
      (void)route(router, "GET", path);
      ADD_FAILURE() << path << " was routed";
    } catch (const http::Error& e) {
      EXPECT_EQ(e.status, 404) << path;
      EXPECT_EQ(e.code, "not_found") << path;
    }
  }
}

TEST(RouterTest, OtherMethodIs405WithAllow) {
  const auto router = shop_router();
  try {
    (void)route(router, "DELETE", "/api/products");
    ADD_FAILURE() << "DELETE was routed";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 405);
    EXPECT_EQ(e.code, "method_not_allowed");
    ASSERT_EQ(e.headers.size(), 1u);
    EXPECT_EQ(e.headers[0].first, "Allow");
    EXPECT_EQ(e.headers[0].second, "GET, POST");
  }
  try {
    (void)route(router, "POST", "/api/products/p1");
    ADD_FAILURE() << "POST was routed";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 405);
    ASSERT_EQ(e.headers.size(), 1u);
    EXPECT_EQ(e.headers[0].second, "GET, PATCH");
  }
}

TEST(RequestTest, HeaderLookupIsCaseInsensitive) {
  http::Request req;
  req.headers = {{"Content-Type", "application/json"}, {"X-Request-Id", "r1"}};
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.header("X-REQUEST-ID"), "r1");
  EXPECT_EQ(req.header("Authorization"), std::nullopt);
}

// -------------------------------------------------------------------------------------- dispatch
http::ServerOptions options(std::string origin = "*") {
  http::ServerOptions o;
  o.cors_origin = std::move(origin);
  return o;
}

void expect_cors(const http::Response& r, const std::string& origin) {
  EXPECT_EQ(header_of(r, "Access-Control-Allow-Origin"), origin);
  EXPECT_EQ(count_of(r, "Access-Control-Allow-Origin"), 1);
  EXPECT_NE(header_of(r, "Access-Control-Expose-Headers").find("ETag"), std::string::npos);
  EXPECT_NE(header_of(r, "Access-Control-Expose-Headers").find("Location"), std::string::npos);
}

TEST(DispatchTest, RoutesThroughTheHandlerWithParsedTarget) {
  const auto router = shop_router();
  const http::Handler handler = [&](http::Request& r) { return router.handle(r); };
  auto req = request("GET", "/api/products/a%20b?x=1");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "get a b");
  EXPECT_EQ(req.query["x"], "1");
  expect_cors(res, "*");
  EXPECT_EQ(header_of(res, "Vary"), "<absent>");
}

TEST(DispatchTest, HttpErrorBecomesJson) {
  const http::Handler handler = [](http::Request&) -> http::Response {
    throw http::Error(409, "insufficient_stock", "not enough \"stock\"",
                      {"mug: 2 available", "pen"});
  };
  auto req = request("POST", "/api/checkout");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 409);
  EXPECT_EQ(res.content_type, "application/json");
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.code, "insufficient_stock");
  EXPECT_EQ(body.message, "not enough \"stock\"");
  EXPECT_EQ(body.details, (std::vector<std::string>{"mug: 2 available", "pen"}));
  expect_cors(res, "*");
}

TEST(DispatchTest, ErrorWithoutDetailsHasAnEmptyArray) {
  const http::Handler handler = [](http::Request&) -> http::Response {
    throw http::Error(422, "invalid_quantity", "bad");
  };
  auto req = request("POST", "/x");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 422);
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_TRUE(body.details.empty());
}

TEST(DispatchTest, UnknownRouteIs404Json) {
  const auto router = shop_router();
  const http::Handler handler = [&](http::Request& r) { return router.handle(r); };
  auto req = request("GET", "/api/nothing");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 404);
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.code, "not_found");
  expect_cors(res, "*");
}

TEST(DispatchTest, WrongMethodIs405JsonWithAllow) {
  const auto router = shop_router();
  const http::Handler handler = [&](http::Request& r) { return router.handle(r); };
  auto req = request("DELETE", "/api/products/p1");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(header_of(res, "Allow"), "GET, PATCH");
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.code, "method_not_allowed");
}

TEST(DispatchTest, MalformedTargetIs400Json) {
  bool called = false;
  const http::Handler handler = [&](http::Request&) {
    called = true;
    return text("ok");
  };
  auto req = request("GET", "/api/products?q=%zz");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_FALSE(called);
  EXPECT_EQ(res.status, 400);
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.code, "bad_request");
  expect_cors(res, "*");
}

TEST(DispatchTest, UnexpectedExceptionIs500WithoutItsMessage) {
  const http::Handler handler = [](http::Request&) -> http::Response {
    throw std::runtime_error("password=hunter2 at db.internal:5432");
  };
  auto req = request("GET", "/api/products");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.content_type, "application/json");
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.code, "internal");
  EXPECT_EQ(res.body.find("hunter2"), std::string::npos) << res.body;
  EXPECT_EQ(res.body.find("db.internal"), std::string::npos) << res.body;
  expect_cors(res, "*");
}

TEST(DispatchTest, PreflightIs204WithoutCallingTheHandler) {
  bool called = false;
  const http::Handler handler = [&](http::Request&) {
    called = true;
    return text("ok");
  };
  auto req = request("OPTIONS", "/api/products/p1");
  req.headers = {{"Origin", "https://shop.example"},
                 {"Access-Control-Request-Method", "PATCH"}};
  const auto res = http::dispatch(handler, req, options("https://shop.example"));
  EXPECT_FALSE(called);
  EXPECT_EQ(res.status, 204);
  EXPECT_TRUE(res.body.empty());
  EXPECT_NE(header_of(res, "Access-Control-Allow-Methods").find("PATCH"), std::string::npos);
  EXPECT_NE(header_of(res, "Access-Control-Allow-Headers").find("Authorization"),
            std::string::npos);
  EXPECT_NE(header_of(res, "Access-Control-Allow-Headers").find("Content-Type"),
            std::string::npos);
  EXPECT_NE(header_of(res, "Access-Control-Max-Age"), "<absent>");
  expect_cors(res, "https://shop.example");
  EXPECT_EQ(header_of(res, "Vary"), "Origin");
}

TEST(DispatchTest, HandlerHeadersAreKept) {
  const http::Handler handler = [](http::Request&) {
    http::Response r = http::json(201, R"({"id":"x"})");
    r.with_header("Location", "/api/products/x");
    return r;
  };
  auto req = request("POST", "/api/products");
  const auto res = http::dispatch(handler, req, options());
  EXPECT_EQ(res.status, 201);
  EXPECT_EQ(res.body, R"({"id":"x"})");
  EXPECT_EQ(header_of(res, "Location"), "/api/products/x");
  expect_cors(res, "*");
}

TEST(ErrorResponseTest, EscapesAndCopiesHeaders) {
  http::Error e(401, "unauthenticated", "line\nbreak \\ \"quoted\"", {"a\tb"});
  e.headers.emplace_back("WWW-Authenticate", "Bearer");
  const auto res = http::error_response(e);
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(header_of(res, "WWW-Authenticate"), "Bearer");
  const auto body = parse_error(res);
  ASSERT_TRUE(body.well_formed) << res.body;
  EXPECT_EQ(body.message, "line\nbreak \\ \"quoted\"");
  EXPECT_EQ(body.details, std::vector<std::string>{"a\tb"});
}

}  // namespace
