// A small blocking HTTP/1.1 client for tests and tools (one connection, keep-alive).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shop/events/json.h"

namespace shop::testing {

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  json::Document json() const;                 // parses body (throws on malformed JSON)
  std::string header(const std::string& lower_name) const;
};

class HttpClient {
 public:
  HttpClient(std::string host, unsigned short port);
  ~HttpClient();
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     const std::string& content_type = "application/json");
  HttpResult get(const std::string& target, const std::string& token = "",
                 const std::vector<std::pair<std::string, std::string>>& headers = {});
  HttpResult post(const std::string& target, const std::string& body, const std::string& token = "",
                  const std::vector<std::pair<std::string, std::string>>& headers = {});
  HttpResult patch(const std::string& target, const std::string& body,
                   const std::string& token = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  HttpResult del(const std::string& target, const std::string& token = "");
  // Sends raw bytes and returns the raw response (for malformed-request tests).
  std::string raw(const std::string& bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::testing
