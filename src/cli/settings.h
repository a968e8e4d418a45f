// Layered settings of a command: its flags, then CRUNCHER_* environment
// variables, then a YAML file (--config), then the flags' defaults.
//
// A command that has a --config option takes every one of its long flags
// three ways: `--queue-url URL` on the command line, CRUNCHER_QUEUE_URL in
// the environment, `queue-url: URL` in the file. The first one present wins,
// per flag. CLI11 parses the command line; ApplySettings then fills in, for
// each flag the command line left out, the environment's value, else the
// file's, through the option's own validators and conversion, so a value
// from any layer is checked alike. (CLI11 2.1's own config-file support
// reads the file before the environment, which gives the file precedence,
// and only on the top-level app: neither fits.)
//
// The file is a YAML mapping of long flag names (without the dashes) to a
// scalar, a list for flags that take several values, or true/false for
// flags without a value. A key that is a flag of another cruncher command is
// ignored, so that one file serves `watch` and the operator's commands; any
// other key, a null, a mapping or a list where one value is expected is an
// error naming the file, line and key.
//
// Thread-safety: functions of their arguments; ApplySettings mutates `cmd`
// and the variables its options are bound to (the main thread, once).
#ifndef CRUNCHER_CLI_SETTINGS_H_
#define CRUNCHER_CLI_SETTINGS_H_

#include <CLI/CLI.hpp>
#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/environment.h"
#include "core/status.h"

namespace cruncher::cli {

// A config file larger than this is refused unread: settings fit in a few
// KiB, and the cap bounds what the YAML parser is given.
inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

// One key of a config file.
struct ConfigEntry {
  std::string key;
  std::vector<std::string> values;  // one for a scalar
  bool list = false;                // written as a YAML sequence
  // An unquoted scalar: only these may be booleans (YAML's `"true"` is a
  // string).
  bool plain = false;
  int line = 0;  // 1-based
};

// The entries of the YAML config file at `path`, in file order.
// InvalidArgument naming the file (and the line and key where there is one)
// if it cannot be read, is larger than kMaxConfigFileBytes, is not YAML, is
// not a mapping, or has a duplicate key, a non-scalar key, a null value, a
// mapping value, or a list holding anything but scalars. An empty file (or
// one with only comments) has no entries.
Result<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path);

// "queue-url" -> "CRUNCHER_QUEUE_URL".
std::string EnvNameFor(std::string_view long_flag);

// Where each flag's value came from: "flag", "env CRUNCHER_X" or
// "file PATH"; flags left at their default are absent.
using SettingSources = std::map<std::string, std::string>;

// Fills in the flags of `cmd` that its command line left out, from `env`
// (CRUNCHER_<FLAG>), then from the file that --config (or CRUNCHER_CONFIG)
// names, if any. Flags that exclude one another (CLI11's excludes): the
// higher layer's wins and the lower layer's excluded value is ignored; two in
// the same lower layer are an error. InvalidArgument naming the variable, or
// the file, line and key, for a value the flag refuses or a key no cruncher
// command takes.
Result<SettingSources> ApplySettings(CLI::App& cmd, const EnvVars& env);

// The effective value of each long flag of `cmd` (after ApplySettings): the
// given value, else the default; numbers as numbers, flags as booleans, a
// flag with neither a value nor a default as null.
nlohmann::json EffectiveSettings(const CLI::App& cmd);

// Whether a setting named `name` holds a secret: its name says token,
// secret, password, passwd, credential, api-key or private-key (any case,
// any separator).
bool IsSecretName(std::string_view name);

// `settings` (an object of name -> value, nested or not) with secrets
// replaced by "<redacted>": the values of secret names (IsSecretName), the
// userinfo of URLs ("https://user:pass@host" -> "https://<redacted>@host"),
// and the values of URL query parameters with secret names.
nlohmann::json RedactSecrets(const nlohmann::json& settings);

}  // namespace cruncher::cli

#endif  // CRUNCHER_CLI_SETTINGS_H_
