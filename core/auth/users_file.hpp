// The users file for SMTP AUTH: one line per user, "name:pbkdf2-sha256:ITERATIONS:SALT:HASH"
// (salt and hash in base64), loaded once at start-up into a UserTable that the relay's
// on_auth() asks. Passwords are never stored, only PBKDF2-HMAC-SHA-256 (RFC 8018 5.2)
// outputs; scripts/ringmta-passwd writes the lines. Format and parameters: docs/auth.md.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ringmta::auth {

// A bad users file: what() is "FILE:LINE: reason" (or "FILE: reason").
class UsersFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PasswordHash {
  std::uint32_t iterations = 0;
  std::vector<unsigned char> salt;
  std::vector<unsigned char> hash;  // the derived key; its length is the PBKDF2 dkLen
};

// Limits the loader enforces (docs/auth.md).
inline constexpr std::uint32_t kMinIterations = 1000;  // RFC 8018 4.2: at least 1,000
inline constexpr std::uint32_t kMaxIterations = 10'000'000;
inline constexpr std::size_t kMinSalt = 8;  // RFC 8018 4.1: at least 64 bits
inline constexpr std::size_t kMaxSalt = 64;
inline constexpr std::size_t kMinHash = 16;
inline constexpr std::size_t kMaxHash = 64;
inline constexpr std::size_t kMaxUserName = 255;  // RFC 4616 2

// PBKDF2-HMAC-SHA-256 of password with h's salt and iterations, compared with h.hash in
// constant time (CRYPTO_memcmp). Thread-safe.
bool verify_password(const PasswordHash& h, std::string_view password);

// The derived key for a password (what ringmta-passwd computes); for tests and tools.
std::vector<unsigned char> derive_key(std::string_view password,
                                      const std::vector<unsigned char>& salt,
                                      std::uint32_t iterations, std::size_t length);

// Immutable after loading: one per relay, shared by every thread (verify is const).
class UserTable {
 public:
  UserTable();
  // Parses a users file's contents. Throws UsersFileError naming file_name and the line of
  // the first bad line: empty or over-long name, a name with ':' or a control character or a
  // space, a duplicate name, an unknown scheme, iterations, salt or hash out of range, bad
  // base64, a wrong number of fields. Blank lines and lines starting with '#' are skipped.
  static UserTable parse(std::string_view text, std::string_view file_name);
  // Reads and parses a file; an unreadable file is a UsersFileError too. Start-up only.
  static UserTable load(const std::string& path);

  // True when user is in the table and password matches. An unknown user costs the same
  // PBKDF2 work (a dummy entry), so timing does not tell which names exist.
  bool verify(std::string_view user, std::string_view password) const;
  bool contains(std::string_view user) const { return users_.count(std::string(user)) != 0; }
  std::size_t size() const { return users_.size(); }

 private:
  std::unordered_map<std::string, PasswordHash> users_;
  PasswordHash dummy_;  // for unknown users: the most common parameters in the file
};

}  // namespace ringmta::auth
