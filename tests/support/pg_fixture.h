// A fresh, migrated PostgreSQL database for a test suite, on the throwaway cluster named by
// TEST_DATABASE_URL. A missing variable or an unreachable server fails the test: tests that
// need PostgreSQL never skip.
#pragma once

#include <string>

namespace shop::testing {

// Creates database `name_<random>` (dropping nothing else), applies the migrations, and returns
// its URL. Calls FAIL()-style GoogleTest failure (throws) when PostgreSQL is not reachable.
std::string create_test_database(const std::string& name);

// The server URL from TEST_DATABASE_URL with another database name.
std::string database_url(const std::string& database);

// Drops a database made by create_test_database (ignores errors).
void drop_test_database(const std::string& url);

}  // namespace shop::testing
