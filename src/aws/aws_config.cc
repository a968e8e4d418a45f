#include "aws/aws_config.h"

#include <algorithm>
#include <cctype>

#include "aws/encoding.h"

extern char** environ;

namespace cruncher::aws {
namespace {

std::string Trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return s;
}

std::string HomeFile(const EnvVars& env, const char* name) {
  std::string home = GetEnv(env, "HOME").value_or("");
  return home + "/.aws/" + name;
}

Result<std::map<std::string, Profile>> LoadFile(const std::string& path,
                                                bool is_config) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {
      return std::map<std::string, Profile>();
    }
    return InvalidArgument(text.status().message());
  }
  return ParseProfiles(*text, is_config, path);
}

}  // namespace

std::optional<std::string> GetEnv(const EnvVars& env, std::string_view name) {
  auto it = env.find(std::string(name));
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::optional<std::string> SharedConfig::Get(const std::string& profile,
                                             const std::string& key) const {
  for (const auto* file : {&credentials, &config}) {
    auto p = file->find(profile);
    if (p == file->end()) continue;
    auto v = p->second.find(key);
    if (v != p->second.end() && !v->second.empty()) return v->second;
  }
  return std::nullopt;
}

bool SharedConfig::HasProfile(const std::string& profile) const {
  return config.count(profile) || credentials.count(profile);
}

Result<std::map<std::string, Profile>> ParseProfiles(std::string_view text,
                                                     bool is_config,
                                                     const std::string& path) {
  std::map<std::string, Profile> out;
  Profile* current = nullptr;  // null: outside a profile section
  bool in_section = false;
  std::string last_key;
  int line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return InvalidArgument(path + ":" + std::to_string(line_no) +
                               ": unterminated section header");
      }
      std::string name = Trim(line.substr(1, line.size() - 2));
      in_section = true;
      current = nullptr;
      last_key.clear();
      if (is_config) {
        if (name == "default") {
          current = &out["default"];
        } else if (name.rfind("profile", 0) == 0 && name.size() > 7 &&
                   std::isspace(static_cast<unsigned char>(name[7]))) {
          current = &out[Trim(name.substr(8))];
        }
        // Other sections ("sso-session", "services") are not profiles.
      } else {
        current = &out[name];
      }
      continue;
    }
    if (!in_section) {
      return InvalidArgument(path + ":" + std::to_string(line_no) +
                             ": key outside of any [section]");
    }
    // An indented line continues a nested block ("s3 =\n  key = v"); nested
    // settings are not used here.
    bool indented = std::isspace(static_cast<unsigned char>(raw[0]));
    if (indented && !last_key.empty()) continue;
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return InvalidArgument(path + ":" + std::to_string(line_no) +
                             ": expected key = value");
    }
    last_key = Lower(Trim(line.substr(0, eq)));
    if (current != nullptr) (*current)[last_key] = Trim(line.substr(eq + 1));
  }
  return out;
}

Result<SharedConfig> LoadSharedConfig(const EnvVars& env) {
  SharedConfig config;
  config.config_path =
      GetEnv(env, "AWS_CONFIG_FILE").value_or(HomeFile(env, "config"));
  config.credentials_path = GetEnv(env, "AWS_SHARED_CREDENTIALS_FILE")
                                .value_or(HomeFile(env, "credentials"));
  CRUNCHER_ASSIGN_OR_RETURN(config.config, LoadFile(config.config_path, true));
  CRUNCHER_ASSIGN_OR_RETURN(config.credentials,
                            LoadFile(config.credentials_path, false));
  return config;
}

std::string ProfileName(const EnvVars& env, std::string_view explicit_profile) {
  if (!explicit_profile.empty()) return std::string(explicit_profile);
  return GetEnv(env, "AWS_PROFILE").value_or("default");
}

std::string ResolveRegion(const EnvVars& env, const SharedConfig& config,
                          const std::string& profile,
                          std::string_view explicit_region) {
  if (!explicit_region.empty()) return std::string(explicit_region);
  if (auto r = GetEnv(env, "AWS_REGION")) return *r;
  if (auto r = GetEnv(env, "AWS_DEFAULT_REGION")) return *r;
  return config.Get(profile, "region").value_or("");
}

std::optional<std::string> ConfiguredEndpoint(
    const EnvVars& env, const SharedConfig& config, const std::string& profile,
    std::string_view service, std::string_view explicit_endpoint) {
  if (!explicit_endpoint.empty()) return std::string(explicit_endpoint);
  std::string upper(service);
  std::transform(
      upper.begin(), upper.end(), upper.begin(), [](unsigned char c) {
        return static_cast<char>(c == '-' || c == ' ' ? '_' : std::toupper(c));
      });
  if (auto e = GetEnv(env, "AWS_ENDPOINT_URL_" + upper)) return e;
  if (auto e = GetEnv(env, "AWS_ENDPOINT_URL")) return e;
  return config.Get(profile, "endpoint_url");
}

std::string DefaultEndpoint(std::string_view service, std::string_view region) {
  std::string suffix =
      region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com";
  return "https://" + std::string(service) + "." + std::string(region) + suffix;
}

}  // namespace cruncher::aws
