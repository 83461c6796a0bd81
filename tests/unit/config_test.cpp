// Configuration: .env parsing and typed lookups.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "shop/infra/config.h"

namespace {

using shop::infra::Config;
using shop::infra::parse_dotenv;

TEST(DotenvTest, ParsesKeysValuesCommentsAndBlankLines) {
  const auto env = parse_dotenv(
      "# database\n"
      "\n"
      "DATABASE_URL=postgres://shop:pw@localhost:5432/shop?sslmode=disable\n"
      "   \n"
      "  # indented comment\n"
      "HTTP_PORT=8080\n"
      "  SPACED  =  padded value  \n"
      "EMPTY=\n"
      "NO_EQUALS_SIGN\n"
      "HASH=abc#def\n");
  EXPECT_EQ(env.size(), 5u);
  EXPECT_EQ(env.at("DATABASE_URL"), "postgres://shop:pw@localhost:5432/shop?sslmode=disable");
  EXPECT_EQ(env.at("HTTP_PORT"), "8080");
  EXPECT_EQ(env.at("SPACED"), "padded value");
  EXPECT_EQ(env.at("EMPTY"), "");
  EXPECT_EQ(env.at("HASH"), "abc#def");
  EXPECT_EQ(env.count("NO_EQUALS_SIGN"), 0u);
  EXPECT_EQ(env.count("# database"), 0u);
}

TEST(DotenvTest, StripsMatchingQuotes) {
  const auto env = parse_dotenv(
      "DOUBLE=\"hello world\"\n"
      "SINGLE='x = y # not a comment'\n"
      "MISMATCHED=\"abc'\n"
      "LONE=\"\n"
      "EMPTY_QUOTED=\"\"\n"
      "INNER=a\"b\"c\n");
  EXPECT_EQ(env.at("DOUBLE"), "hello world");
  EXPECT_EQ(env.at("SINGLE"), "x = y # not a comment");
  EXPECT_EQ(env.at("MISMATCHED"), "\"abc'");
  EXPECT_EQ(env.at("LONE"), "\"");
  EXPECT_EQ(env.at("EMPTY_QUOTED"), "");
  EXPECT_EQ(env.at("INNER"), "a\"b\"c");
}

TEST(DotenvTest, ExportPrefixAndLineEndings) {
  const auto env = parse_dotenv(
      "export JWT_SECRET=s3cret\r\n"
      "export   LOG_LEVEL = debug\r\n"
      "EXPORTED_NAME=export\n"
      "LAST=no newline at the end");
  EXPECT_EQ(env.at("JWT_SECRET"), "s3cret");
  EXPECT_EQ(env.at("LOG_LEVEL"), "debug");
  EXPECT_EQ(env.at("EXPORTED_NAME"), "export");
  EXPECT_EQ(env.at("LAST"), "no newline at the end");
  EXPECT_EQ(env.count("export JWT_SECRET"), 0u);
}

TEST(DotenvTest, LaterLinesWin) {
  const auto env = parse_dotenv("A=1\nA=2\n");
  EXPECT_EQ(env.at("A"), "2");
  EXPECT_TRUE(parse_dotenv("").empty());
  EXPECT_TRUE(parse_dotenv("\n\n# only comments\n").empty());
}

TEST(ConfigTest, GetFromMap) {
  const auto c = Config::from_map({{"A", "alpha"}, {"EMPTY", ""}});
  EXPECT_EQ(c.get("A"), "alpha");
  EXPECT_EQ(c.get("MISSING"), std::nullopt);
  EXPECT_EQ(c.get("EMPTY"), std::nullopt);  // an empty value counts as unset
  EXPECT_EQ(c.get_or("A", "x"), "alpha");
  EXPECT_EQ(c.get_or("MISSING", "fallback"), "fallback");
  EXPECT_EQ(c.get_or("EMPTY", "fallback"), "fallback");
  EXPECT_EQ(c.require("A"), "alpha");
  EXPECT_THROW((void)c.require("MISSING"), std::runtime_error);
}

TEST(ConfigTest, GetInt) {
  const auto c = Config::from_map({{"PORT", "8080"},
                                   {"NEG", "-5"},
                                   {"ZERO", "0"},
                                   {"WORD", "abc"},
                                   {"TRAILING", "12abc"},
                                   {"FLOAT", "1.5"},
                                   {"HUGE", "99999999999"},
                                   {"EMPTY", ""}});
  EXPECT_EQ(c.get_int("PORT", 1), 8080);
  EXPECT_EQ(c.get_int("NEG", 1), -5);
  EXPECT_EQ(c.get_int("ZERO", 1), 0);
  EXPECT_EQ(c.get_int("MISSING", 42), 42);
  EXPECT_EQ(c.get_int("EMPTY", 42), 42);
  for (const char* key : {"WORD", "TRAILING", "FLOAT", "HUGE"}) {
    try {
      (void)c.get_int(key, 0);
      ADD_FAILURE() << key << " was read as an integer";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

TEST(ConfigTest, FromMapIgnoresTheEnvironment) {
  ASSERT_EQ(::setenv("SHOP_CONFIG_TEST_KEY", "from-env", 1), 0);
  const auto c = Config::from_map({{"SHOP_CONFIG_TEST_KEY", "from-map"}});
  EXPECT_EQ(c.get("SHOP_CONFIG_TEST_KEY"), "from-map");
  EXPECT_EQ(Config::from_map({}).get("SHOP_CONFIG_TEST_KEY"), std::nullopt);
  ::unsetenv("SHOP_CONFIG_TEST_KEY");
}

TEST(ConfigTest, LoadReadsEnvFileAndTheEnvironmentWins) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("shop_config_test_" + std::to_string(::getpid()) + ".env");
  {
    std::ofstream f(path);
    f << "SHOP_CONFIG_TEST_FILE_ONLY=file\n"
         "export SHOP_CONFIG_TEST_BOTH=\"file\"\n"
         "SHOP_CONFIG_TEST_PORT=9090\n";
  }
  ASSERT_EQ(::setenv("ENV_FILE", path.c_str(), 1), 0);
  ASSERT_EQ(::setenv("SHOP_CONFIG_TEST_BOTH", "env", 1), 0);
  ::unsetenv("SHOP_CONFIG_TEST_FILE_ONLY");
  const auto c = Config::load();
  EXPECT_EQ(c.get("SHOP_CONFIG_TEST_FILE_ONLY"), "file");
  EXPECT_EQ(c.get("SHOP_CONFIG_TEST_BOTH"), "env");
  EXPECT_EQ(c.get_int("SHOP_CONFIG_TEST_PORT", 0), 9090);
  ::unsetenv("ENV_FILE");
  ::unsetenv("SHOP_CONFIG_TEST_BOTH");
  std::filesystem::remove(path);
}

}  // namespace
