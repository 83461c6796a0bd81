#include "shop/infra/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace shop::infra {

namespace {
std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}
}  // namespace

std::map<std::string, std::string> parse_dotenv(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("export ", 0) == 0) line = trim(line.substr(7));
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    out[key] = value;
  }
  return out;
}

Config Config::load() {
  Config c;
  const char* env_file = std::getenv("ENV_FILE");
  std::ifstream f(env_file ? env_file : ".env");
  if (f) {
    std::stringstream ss;
    ss << f.rdbuf();
    c.file_ = parse_dotenv(ss.str());
  }
  return c;
}

Config Config::from_map(std::map<std::string, std::string> values) {
  Config c;
  c.file_ = std::move(values);
  c.use_env_ = false;
  return c;
}

std::optional<std::string> Config::get(const std::string& key) const {
  if (use_env_) {
    if (const char* v = std::getenv(key.c_str()); v && *v) return std::string(v);
  }
  if (auto it = file_.find(key); it != file_.end() && !it->second.empty()) return it->second;
  return std::nullopt;
}

std::string Config::get_or(const std::string& key, const std::string& fallback) const {
  return get(key).value_or(fallback);
}

int Config::get_int(const std::string& key, int fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  try {
    std::size_t used = 0;
    int n = std::stoi(*v, &used);
    if (used != v->size()) throw std::invalid_argument(*v);
    return n;
  } catch (const std::exception&) {
    throw std::runtime_error("configuration " + key + " must be an integer, got '" + *v + "'");
  }
}

std::string Config::require(const std::string& key) const {
  auto v = get(key);
  if (!v) throw std::runtime_error("configuration " + key + " is required (environment or .env)");
  return *v;
}

}  // namespace shop::infra
