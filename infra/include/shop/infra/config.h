// Configuration from the environment, with a .env file as fallback (KEY=VALUE lines; the
// environment wins). Every service reads the same keys.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace shop::infra {

class Config {
 public:
  // Loads the .env file named by ENV_FILE, else ./.env if present.
  static Config load();
  static Config from_map(std::map<std::string, std::string> values);

  std::optional<std::string> get(const std::string& key) const;
  std::string get_or(const std::string& key, const std::string& fallback) const;
  int get_int(const std::string& key, int fallback) const;  // throws on a malformed number
  std::string require(const std::string& key) const;        // throws when missing

 private:
  std::map<std::string, std::string> file_;
  bool use_env_ = true;
};

// Parses .env text: KEY=VALUE, optional quotes, # comments, optional "export ".
std::map<std::string, std::string> parse_dotenv(const std::string& text);

}  // namespace shop::infra
