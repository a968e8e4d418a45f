// AWS configuration as the CLI and SDKs resolve it: the process environment
// (AWS_*), the shared config and credentials files with their profiles, and
// from those the region and the endpoint of a service.
//
// The environment is passed around as a snapshot (EnvVars) rather than read
// with getenv() deep inside, so tests can give each case its own.
//
// Thread-safety: values and pure functions; LoadSharedConfig reads files.
#ifndef CRUNCHER_AWS_AWS_CONFIG_H_
#define CRUNCHER_AWS_AWS_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/environment.h"
#include "core/status.h"

namespace cruncher::aws {

// The value of `name` in `env` if set and non-empty.
std::optional<std::string> GetEnv(const EnvVars& env, std::string_view name);

using Profile = std::map<std::string, std::string>;  // key -> value

// The shared files: `config` ("[default]", "[profile NAME]") and
// `credentials` ("[NAME]"), parsed as INI. Keys are lower-cased.
struct SharedConfig {
  std::string config_path;
  std::string credentials_path;
  std::map<std::string, Profile> config;       // by profile name
  std::map<std::string, Profile> credentials;  // by profile name

  // The value of `key` for `profile`, credentials file first.
  std::optional<std::string> Get(const std::string& profile,
                                 const std::string& key) const;
  bool HasProfile(const std::string& profile) const;
};

// Reads AWS_CONFIG_FILE (default ~/.aws/config) and
// AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials). Missing files are
// empty; an unreadable or malformed file fails with InvalidArgument naming
// the file and line.
Result<SharedConfig> LoadSharedConfig(const EnvVars& env);

// Parses one INI document; `is_config` selects the "[profile NAME]" form.
Result<std::map<std::string, Profile>> ParseProfiles(std::string_view text,
                                                     bool is_config,
                                                     const std::string& path);

// `explicit_profile` if set, else AWS_PROFILE, else "default".
std::string ProfileName(const EnvVars& env, std::string_view explicit_profile);

// `explicit_region` if set, else AWS_REGION, AWS_DEFAULT_REGION, the
// profile's `region`; "" when none is configured.
std::string ResolveRegion(const EnvVars& env, const SharedConfig& config,
                          const std::string& profile,
                          std::string_view explicit_region);

// The endpoint of `service` ("sqs", "sts"): `explicit_endpoint` if set, else
// AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the profile's
// `endpoint_url`; nullopt when none is configured (use the AWS default).
std::optional<std::string> ConfiguredEndpoint(
    const EnvVars& env, const SharedConfig& config, const std::string& profile,
    std::string_view service, std::string_view explicit_endpoint);

// "https://<service>.<region>.amazonaws.com" (".amazonaws.com.cn" in China).
std::string DefaultEndpoint(std::string_view service, std::string_view region);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_AWS_CONFIG_H_
