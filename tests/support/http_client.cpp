#include "support/http_client.h"

#include <boost/asio.hpp>
#include <optional>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace shop::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

json::Document HttpResult::json() const {
  json::Document d;
  if (auto err = json::parse(body, d); !err.empty()) {
    throw std::runtime_error("response is not JSON (" + err + "): " + body);
  }
  return d;
}

std::string HttpResult::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

struct HttpClient::Impl {
  std::string host;
  unsigned short port;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void connect() {
    stream.emplace(ioc);
    tcp::resolver resolver(ioc);
    stream->connect(resolver.resolve(host, std::to_string(port)));
    stream->socket().set_option(tcp::no_delay(true));
    buffer.clear();
  }
};

HttpClient::HttpClient(std::string host, unsigned short port) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}
HttpClient::~HttpClient() = default;

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& content_type) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      if (!impl_->stream) impl_->connect();
      bhttp::request<bhttp::string_body> req;
      req.method_string(method);
      req.target(target);
      req.version(11);
      req.set(bhttp::field::host, impl_->host);
      req.keep_alive(true);
      for (const auto& [k, v] : headers) req.set(k, v);
      if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
        if (!body.empty() && !content_type.empty()) req.set(bhttp::field::content_type, content_type);
        req.body() = body;
        req.prepare_payload();
      }
      impl_->stream->expires_after(std::chrono::seconds(60));
      bhttp::write(*impl_->stream, req);
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      if (method == "HEAD") parser.skip(true);
      bhttp::read(*impl_->stream, impl_->buffer, parser);
      auto& res = parser.get();
      HttpResult out;
      out.status = static_cast<int>(res.result_int());
      out.body = res.body();
      for (const auto& f : res) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = std::string(f.value());
      }
      if (!res.keep_alive()) impl_->stream.reset();
      return out;
    } catch (const std::exception&) {
      impl_->stream.reset();
      if (attempt == 1) throw;
    }
  }
  throw std::logic_error("unreachable");
}

namespace {
std::vector<std::pair<std::string, std::string>> with_token(
    std::vector<std::pair<std::string, std::string>> headers, const std::string& token) {
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  return headers;
}
}  // namespace

HttpResult HttpClient::get(const std::string& target, const std::string& token,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
  return request("GET", target, "", with_token(headers, token));
}
HttpResult HttpClient::post(const std::string& target, const std::string& body,
                            const std::string& token,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  return request("POST", target, body, with_token(headers, token));
}
HttpResult HttpClient::patch(const std::string& target, const std::string& body,
                             const std::string& token,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
  return request("PATCH", target, body, with_token(headers, token));
}
HttpResult HttpClient::del(const std::string& target, const std::string& token) {
  return request("DELETE", target, "", with_token({}, token));
}

std::string HttpClient::raw(const std::string& bytes) {
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  tcp::resolver resolver(ioc);
  s.connect(resolver.resolve(impl_->host, std::to_string(impl_->port)));
  s.expires_after(std::chrono::seconds(30));
  asio::write(s, asio::buffer(bytes));
  std::string out;
  beast::error_code ec;
  char buf[4096];
  for (;;) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec || out.find("\r\n\r\n") != std::string::npos) break;
  }
  return out;
}

}  // namespace shop::testing
