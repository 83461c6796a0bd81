#include "support/pg_fixture.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <pqxx/pqxx>
#include <stdexcept>

#include "shop/events/types.h"
#include "shop/infra/pg.h"

namespace shop::testing {

namespace {
std::string admin_url() {
  const char* url = std::getenv("TEST_DATABASE_URL");
  if (!url || !*url) {
    throw std::runtime_error(
        "TEST_DATABASE_URL is not set: run the tests through scripts/test.sh, which starts a "
        "throwaway PostgreSQL (tests that need PostgreSQL fail rather than skip)");
  }
  return url;
}
}  // namespace

std::string database_url(const std::string& database) {
  std::string url = admin_url();
  // postgresql://user@host:port/dbname[?params]
  auto q = url.find('?');
  std::string params = q == std::string::npos ? "" : url.substr(q);
  std::string base = url.substr(0, q);
  auto slash = base.rfind('/');
  if (slash == std::string::npos || slash < base.find("//") + 2) {
    throw std::runtime_error("TEST_DATABASE_URL must be postgresql://user@host:port/db");
  }
  return base.substr(0, slash + 1) + database + params;
}

std::string create_test_database(const std::string& name) {
  std::string db = name + "_" + new_uuid().substr(0, 8);
  for (auto& c : db) {
    if (c == '-') c = '_';
  }
  {
    pqxx::connection c(admin_url());
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + tx.quote_name(db));
  }
  const std::string url = database_url(db);
  infra::migrate(url);
  return url;
}

void drop_test_database(const std::string& url) {
  try {
    auto slash = url.rfind('/');
    auto q = url.find('?', slash);
    std::string db = url.substr(slash + 1, q == std::string::npos ? std::string::npos : q - slash - 1);
    pqxx::connection c(admin_url());
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(db) + " WITH (FORCE)");
  } catch (const std::exception&) {
  }
}

}  // namespace shop::testing
