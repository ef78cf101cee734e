// The users file: PBKDF2-HMAC-SHA-256 against known vectors, the loader's refusals (file:line
// and reason), verification, and agreement with scripts/ringmta-passwd (the Python writer).
#include "core/auth/users_file.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace ringmta::auth {
namespace {

std::string hex(const std::vector<unsigned char>& v) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : v) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

std::vector<unsigned char> bytes(std::string_view s) { return {s.begin(), s.end()}; }

// hashlib.pbkdf2_hmac("sha256", b"s3cret", b"saltsaltsaltsalt", 1000, 32), as the script does.
const std::string kAlice =
    "alice:pbkdf2-sha256:1000:c2FsdHNhbHRzYWx0c2FsdA==:"
    "8W5yLmqTx7pmJ5+3qp/ZOQP9vTuo+lMNfP/lMdTb9u8=";

TEST(Pbkdf2, KnownVectors) {
  // PBKDF2-HMAC-SHA-256, P = "password", S = "salt" (the vectors RFC 7914 11 builds on).
  EXPECT_EQ(hex(derive_key("password", bytes("salt"), 1, 32)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  EXPECT_EQ(hex(derive_key("password", bytes("salt"), 4096, 32)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  PasswordHash h{4096, bytes("salt"), derive_key("password", bytes("salt"), 4096, 32)};
  EXPECT_TRUE(verify_password(h, "password"));
  EXPECT_FALSE(verify_password(h, "passwore"));
  EXPECT_FALSE(verify_password(h, ""));
  h.hash.back() ^= 1;
  EXPECT_FALSE(verify_password(h, "password"));
}

TEST(UsersFile, ParsesAndVerifies) {
  const UserTable t = UserTable::parse("# users\n\n" + kAlice + "\r\n", "users");
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.contains("alice"));
  EXPECT_TRUE(t.verify("alice", "s3cret"));
  EXPECT_FALSE(t.verify("alice", "s3cre"));
  EXPECT_FALSE(t.verify("alice", "S3cret"));
  EXPECT_FALSE(t.verify("Alice", "s3cret"));  // names are exact
  EXPECT_FALSE(t.verify("mallory", "s3cret"));
  EXPECT_TRUE(UserTable::parse("", "empty").size() == 0);
}

std::string error_of(const std::string& text) {
  try {
    UserTable::parse(text, "users.db");
  } catch (const UsersFileError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(UsersFile, RefusesBadLinesWithFileLineAndReason) {
  const std::string salt = "c2FsdHNhbHRzYWx0c2FsdA==";
  const std::string hash = "8W5yLmqTx7pmJ5+3qp/ZOQP9vTuo+lMNfP/lMdTb9u8=";
  const std::string ok = "x:pbkdf2-sha256:1000:" + salt + ":" + hash + "\n";
  EXPECT_EQ(error_of(ok + "alice\n"),
            "users.db:2: expected 5 fields (name:scheme:iterations:salt:hash)");
  EXPECT_EQ(error_of(ok + "# c\n" + "a:b:pbkdf2-sha256:1000:" + salt + ":" + hash + "\n"),
            "users.db:3: more than 5 fields (name:scheme:iterations:salt:hash)");
  EXPECT_EQ(error_of(":pbkdf2-sha256:1000:" + salt + ":" + hash), "users.db:1: empty user name");
  EXPECT_EQ(error_of("a b:pbkdf2-sha256:1000:" + salt + ":" + hash),
            "users.db:1: user name holds a space or a control character");
  EXPECT_EQ(error_of(std::string(256, 'u') + ":pbkdf2-sha256:1000:" + salt + ":" + hash),
            "users.db:1: user name over 255 octets");
  EXPECT_EQ(error_of("a:plain:1000:" + salt + ":" + hash),
            "users.db:1: unknown scheme \"plain\" (only pbkdf2-sha256)");
  for (const char* it : {"999", "10000001", "", "1e4", "-1000", "1000x", "99999999999"}) {
    EXPECT_EQ(error_of(std::string("a:pbkdf2-sha256:") + it + ":" + salt + ":" + hash),
              "users.db:1: iterations must be a number from 1000 to 10000000")
        << it;
  }
  EXPECT_EQ(error_of("a:pbkdf2-sha256:1000:c2FsdA=:" + hash), "users.db:1: salt is not base64");
  EXPECT_EQ(error_of("a:pbkdf2-sha256:1000:c2FsdA==:" + hash),
            "users.db:1: salt must be 8 to 64 octets");
  EXPECT_EQ(error_of("a:pbkdf2-sha256:1000:" + salt + ":8W5yLmqTx7pmJ5+3 qp/ZOQP9vTuo+lM"),
            "users.db:1: hash is not base64");
  EXPECT_EQ(error_of("a:pbkdf2-sha256:1000:" + salt + ":" + salt.substr(0, 12)),
            "users.db:1: hash must be 16 to 64 octets");
  EXPECT_EQ(error_of(ok + ok), "users.db:2: duplicate user \"x\"");
}

TEST(UsersFile, LoadNamesAMissingFile) {
  try {
    UserTable::load("/nonexistent/ringmta-users");
    FAIL() << "loaded";
  } catch (const UsersFileError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/ringmta-users: cannot read the users file");
  }
}

// The Python writer and the C++ verifier agree (and the script keeps other users' lines).
TEST(UsersFile, AgreesWithRingmtaPasswd) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ringmta-passwd-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "users";
  const std::string script = std::string(RINGMTA_SOURCE_DIR) + "/scripts/ringmta-passwd";
  auto add = [&](const std::string& user, const std::string& password,
                 const std::string& extra = "") {
    const std::string cmd = "/usr/bin/python3 " + script + " --iterations 1000 " + extra + " " +
                            file.string() + " '" + user + "' 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "w");
    if (p == nullptr) return -1;
    std::fputs((password + "\n").c_str(), p);
    return pclose(p);
  };
  ASSERT_EQ(add("alice", "s3cret"), 0);
  ASSERT_EQ(add("bob", "pw:2 x\xc3\xa9"), 0);
  ASSERT_EQ(add("carol@example.org", "third"), 0);
  ASSERT_EQ(add("alice", "changed"), 0);  // replaces alice's line
  EXPECT_NE(add("bad:name", "x"), 0);
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  const UserTable t = UserTable::load(file.string());
  EXPECT_EQ(t.size(), 3u);
  EXPECT_TRUE(t.verify("alice", "changed"));
  EXPECT_FALSE(t.verify("alice", "s3cret"));
  EXPECT_TRUE(t.verify("bob", "pw:2 x\xc3\xa9"));
  EXPECT_TRUE(t.verify("carol@example.org", "third"));
  // Default iterations from the script load too.
  const std::string cmd = "/usr/bin/python3 " + script + " " + file.string() + " dave";
  FILE* p = popen(cmd.c_str(), "w");
  ASSERT_NE(p, nullptr);
  std::fputs("fourth\n", p);
  ASSERT_EQ(pclose(p), 0);
  EXPECT_TRUE(UserTable::load(file.string()).verify("dave", "fourth"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ringmta::auth
