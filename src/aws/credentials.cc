#include "aws/credentials.h"

#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "aws/encoding.h"
#include "aws/json_fields.h"
#include "aws/sts.h"
#include "core/json_limits.h"
#include "net/http_transport.h"

namespace cruncher::aws {
namespace {

using nlohmann::json;

// Credentials JSON as container endpoints and IMDS return it.
Result<AwsCredentials> ParseCredentialsJson(const std::string& body,
                                            const std::string& source) {
  Result<json> parsed = ParseJson(body);
  if (!parsed.ok()) return parsed.status().WithContext(source + ": response");
  if (!parsed->is_object()) {
    return InvalidArgument(source + ": response is not a JSON object");
  }
  const json& j = *parsed;
  AwsCredentials creds;
  creds.access_key_id = JsonString(j, "AccessKeyId");
  creds.secret_access_key = JsonString(j, "SecretAccessKey");
  creds.session_token = JsonString(j, "Token");
  if (creds.session_token.empty()) {
    creds.session_token = JsonString(j, "SessionToken");
  }
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return InvalidArgument(source +
                           ": response lacks AccessKeyId or "
                           "SecretAccessKey");
  }
  std::string expiration = JsonString(j, "Expiration");
  if (!expiration.empty()) {
    CRUNCHER_ASSIGN_OR_RETURN(creds.expiration, ParseIso8601(expiration));
  }
  creds.source = source;
  return creds;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.pop_back();
  }
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// Everything the chain needs while building providers.
struct ChainContext {
  const SharedConfig& config;
  std::shared_ptr<StsClient> sts;
};

std::shared_ptr<CredentialsProvider> WebIdentityProvider(
    std::shared_ptr<StsClient> sts, std::string role_arn,
    std::string token_file, std::string session_name) {
  std::string description =
      "web identity (role " + role_arn + ", token file " + token_file + ")";
  auto fetch = [sts, role_arn, token_file, session_name,
                description](Millis now) -> Result<AwsCredentials> {
    // Re-read on every refresh: the kubelet rotates projected tokens.
    Result<std::string> token = ReadFile(token_file);
    if (!token.ok()) return token.status().WithContext(description);
    std::string session =
        session_name.empty() ? "cruncher-" + std::to_string(now) : session_name;
    Result<AwsCredentials> creds =
        sts->AssumeRoleWithWebIdentity(role_arn, session, Trim(*token));
    if (!creds.ok()) return creds.status().WithContext(description);
    creds->source = description;
    return creds;
  };
  return std::make_shared<RefreshingCredentialsProvider>(description,
                                                         std::move(fetch));
}

std::optional<AwsCredentials> StaticKeys(
    const std::map<std::string, Profile>& file, const std::string& profile,
    const std::string& source) {
  auto p = file.find(profile);
  if (p == file.end()) return std::nullopt;
  auto get = [&](const char* key) {
    auto it = p->second.find(key);
    return it == p->second.end() ? std::string() : it->second;
  };
  AwsCredentials creds;
  creds.access_key_id = get("aws_access_key_id");
  creds.secret_access_key = get("aws_secret_access_key");
  creds.session_token = get("aws_session_token");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return std::nullopt;
  }
  creds.source = source;
  return creds;
}

// The provider for `profile`, or nullptr when it configures no credentials.
Result<std::shared_ptr<CredentialsProvider>> ProfileProvider(
    const ChainContext& ctx, const std::string& profile,
    std::set<std::string>& visited) {
  const SharedConfig& config = ctx.config;
  const std::string where = "profile \"" + profile + "\" (" +
                            config.config_path + ", " +
                            config.credentials_path + ")";
  if (!visited.insert(profile).second) {
    return InvalidArgument("source_profile loop through " + where);
  }
  if (!config.HasProfile(profile)) {
    return std::shared_ptr<CredentialsProvider>();
  }
  if (auto role_arn = config.Get(profile, "role_arn")) {
    std::string session = config.Get(profile, "role_session_name").value_or("");
    if (auto token_file = config.Get(profile, "web_identity_token_file")) {
      return WebIdentityProvider(ctx.sts, *role_arn, *token_file, session);
    }
    auto source_profile = config.Get(profile, "source_profile");
    if (!source_profile) {
      if (config.Get(profile, "credential_source")) {
        return InvalidArgument(where +
                               ": credential_source is not supported; use "
                               "source_profile");
      }
      return InvalidArgument(where + ": role_arn needs source_profile");
    }
    std::shared_ptr<CredentialsProvider> source;
    if (*source_profile == profile) {
      // A profile may assume a role with its own static keys.
      auto keys = StaticKeys(config.credentials, profile, where);
      if (!keys) keys = StaticKeys(config.config, profile, where);
      if (!keys)
        return InvalidArgument(where +
                               ": source_profile is itself "
                               "but it has no static keys");
      source = std::make_shared<StaticCredentialsProvider>(*keys);
    } else {
      if (!config.HasProfile(*source_profile)) {
        return InvalidArgument(where + ": source_profile \"" + *source_profile +
                               "\" does not exist");
      }
      CRUNCHER_ASSIGN_OR_RETURN(source,
                                ProfileProvider(ctx, *source_profile, visited));
      if (!source) {
        return InvalidArgument(where + ": source_profile \"" + *source_profile +
                               "\" has no credentials");
      }
    }
    std::optional<std::string> external_id = config.Get(profile, "external_id");
    std::optional<int> duration;
    if (auto d = config.Get(profile, "duration_seconds")) {
      try {
        duration = std::stoi(*d);
      } catch (const std::exception&) {
        return InvalidArgument(where + ": duration_seconds is not a number");
      }
    }
    std::string description = "assume role " + *role_arn + " from " + where;
    auto sts = ctx.sts;
    auto fetch = [sts, source, role = *role_arn, session, external_id, duration,
                  description](Millis now) -> Result<AwsCredentials> {
      Result<AwsCredentials> src = source->GetCredentials(now);
      if (!src.ok()) return src.status().WithContext(description);
      std::string name =
          session.empty() ? "cruncher-" + std::to_string(now) : session;
      Result<AwsCredentials> creds =
          sts->AssumeRole(role, name, external_id, duration, *src, now);
      if (!creds.ok()) return creds.status().WithContext(description);
      creds->source = description;
      return creds;
    };
    return std::shared_ptr<CredentialsProvider>(
        std::make_shared<RefreshingCredentialsProvider>(description,
                                                        std::move(fetch)));
  }
  if (auto keys = StaticKeys(config.credentials, profile, where)) {
    return std::shared_ptr<CredentialsProvider>(
        std::make_shared<StaticCredentialsProvider>(*keys));
  }
  if (auto command = config.Get(profile, "credential_process")) {
    std::string description = "credential_process of " + where;
    auto fetch = [command = *command, description](Millis) {
      return RunCredentialProcess(command, description);
    };
    return std::shared_ptr<CredentialsProvider>(
        std::make_shared<RefreshingCredentialsProvider>(description,
                                                        std::move(fetch)));
  }
  if (auto keys = StaticKeys(config.config, profile, where)) {
    return std::shared_ptr<CredentialsProvider>(
        std::make_shared<StaticCredentialsProvider>(*keys));
  }
  return std::shared_ptr<CredentialsProvider>();
}

std::shared_ptr<CredentialsProvider> ContainerProvider(
    const EnvVars& env, std::shared_ptr<net::HttpTransport> transport) {
  std::string uri;
  if (auto full = GetEnv(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    uri = *full;
  } else if (auto rel = GetEnv(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    uri = "http://169.254.170.2" + *rel;
  } else {
    return nullptr;
  }
  std::optional<std::string> token_file =
      GetEnv(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  std::optional<std::string> token =
      GetEnv(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
  std::string description = "container credentials endpoint " + uri;
  auto fetch = [transport, uri, token_file, token,
                description](Millis) -> Result<AwsCredentials> {
    net::HttpRequest request;
    request.method = "GET";
    request.url = uri;
    request.timeout_ms = 5000;
    request.connect_timeout_ms = 2000;
    if (token_file) {
      Result<std::string> t = ReadFile(*token_file);
      if (!t.ok()) return t.status().WithContext(description);
      request.headers.emplace_back("Authorization", Trim(*t));
    } else if (token) {
      request.headers.emplace_back("Authorization", *token);
    }
    net::HttpOutcome outcome = transport->Send(request);
    if (!outcome.status.ok()) return outcome.status.WithContext(description);
    if (outcome.response.status != 200) {
      return Status(
          outcome.response.status >= 500 ? StatusCode::kUnavailable
                                         : StatusCode::kFailedPrecondition,
          description + ": HTTP " + std::to_string(outcome.response.status));
    }
    return ParseCredentialsJson(outcome.response.body, description);
  };
  return std::make_shared<RefreshingCredentialsProvider>(description,
                                                         std::move(fetch));
}

std::shared_ptr<CredentialsProvider> ImdsProvider(
    const EnvVars& env, std::shared_ptr<net::HttpTransport> transport,
    long timeout_ms, std::string tried) {
  std::string base = GetEnv(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")
                         .value_or("http://169.254.169.254");
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string description = "EC2 instance metadata (" + base + ")";
  auto fetch = [transport, base, timeout_ms, tried,
                description](Millis) -> Result<AwsCredentials> {
    auto fail = [&](const std::string& why) {
      return NotFound("no AWS credentials found; tried " + tried + ", and " +
                      description + ": " + why);
    };
    auto exchange = [&](net::HttpRequest request) -> Result<std::string> {
      request.timeout_ms = timeout_ms;
      request.connect_timeout_ms = timeout_ms;
      net::HttpOutcome outcome = transport->Send(request);
      if (!outcome.status.ok()) return outcome.status;
      if (outcome.response.status != 200) {
        return Unavailable(request.method + " " + request.url + ": HTTP " +
                           std::to_string(outcome.response.status));
      }
      return outcome.response.body;
    };
    net::HttpRequest put;
    put.method = "PUT";
    put.url = base + "/latest/api/token";
    put.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
    Result<std::string> token = exchange(put);
    if (!token.ok()) return fail(token.status().message());
    net::HttpRequest get;
    get.method = "GET";
    get.url = base + "/latest/meta-data/iam/security-credentials/";
    get.headers = {{"X-aws-ec2-metadata-token", *token}};
    Result<std::string> roles = exchange(get);
    if (!roles.ok()) return fail(roles.status().message());
    std::string role = Trim(roles->substr(0, roles->find('\n')));
    if (role.empty()) return fail("no instance profile role attached");
    get.url += role;
    Result<std::string> body = exchange(get);
    if (!body.ok()) return fail(body.status().message());
    return ParseCredentialsJson(*body, description + " role " + role);
  };
  return std::make_shared<RefreshingCredentialsProvider>(description,
                                                         std::move(fetch));
}

}  // namespace

Result<AwsCredentials> RefreshingCredentialsProvider::GetCredentials(
    Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_ && (!cached_->expiration ||
                  now < *cached_->expiration - refresh_ahead_ms_)) {
    return *cached_;
  }
  Result<AwsCredentials> fresh = fetch_(now);
  if (fresh.ok()) {
    cached_ = *fresh;
    return fresh;
  }
  if (cached_ && cached_->expiration && now < *cached_->expiration) {
    return *cached_;  // still valid; refresh again on the next call
  }
  return fresh.status();
}

Result<AwsCredentials> ParseCredentialProcessOutput(std::string_view output,
                                                    const std::string& source) {
  Result<json> parsed = ParseJson(output);
  if (!parsed.ok()) return parsed.status().WithContext(source + ": output");
  if (!parsed->is_object()) {
    return InvalidArgument(source + ": output is not a JSON object");
  }
  const json& j = *parsed;
  auto version = j.find("Version");
  // get<long long>: get<int> would wrap 4294967297 to 1.
  if (version == j.end() || !version->is_number_integer() ||
      version->get<long long>() != 1) {
    return InvalidArgument(source + ": output must have \"Version\": 1");
  }
  AwsCredentials creds;
  creds.access_key_id = JsonString(j, "AccessKeyId");
  creds.secret_access_key = JsonString(j, "SecretAccessKey");
  creds.session_token = JsonString(j, "SessionToken");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return InvalidArgument(source +
                           ": output lacks AccessKeyId or SecretAccessKey");
  }
  std::string expiration = JsonString(j, "Expiration");
  if (!expiration.empty()) {
    Result<Millis> t = ParseIso8601(expiration);
    if (!t.ok()) return t.status().WithContext(source + ": Expiration");
    creds.expiration = *t;
  }
  creds.source = source;
  return creds;
}

Result<AwsCredentials> RunCredentialProcess(const std::string& command,
                                            const std::string& source) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return Internal(source + ": cannot start the command");
  }
  std::string output;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  int rc = ::pclose(pipe);
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    std::string how = rc != -1 && WIFEXITED(rc)
                          ? "exit status " + std::to_string(WEXITSTATUS(rc))
                          : "abnormal termination";
    return FailedPrecondition(source + ": command failed (" + how + ")");
  }
  return ParseCredentialProcessOutput(output, source);
}

Result<std::shared_ptr<CredentialsProvider>> DefaultCredentialsChain(
    const CredentialChainOptions& options) {
  const EnvVars& env = options.env;
  if (options.transport == nullptr) {
    return InvalidArgument("credential chain needs an HTTP transport");
  }
  // 1. Environment.
  auto key = GetEnv(env, "AWS_ACCESS_KEY_ID");
  auto secret = GetEnv(env, "AWS_SECRET_ACCESS_KEY");
  if (key && secret) {
    AwsCredentials creds;
    creds.access_key_id = *key;
    creds.secret_access_key = *secret;
    creds.session_token = GetEnv(env, "AWS_SESSION_TOKEN").value_or("");
    creds.source = "environment (AWS_ACCESS_KEY_ID)";
    return std::shared_ptr<CredentialsProvider>(
        std::make_shared<StaticCredentialsProvider>(std::move(creds)));
  }
  if (key || secret) {
    return InvalidArgument(
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
  }

  CRUNCHER_ASSIGN_OR_RETURN(SharedConfig config, LoadSharedConfig(env));
  const std::string profile = ProfileName(env, options.profile);
  std::string region = ResolveRegion(env, config, profile, options.region);
  std::string sts_endpoint =
      ConfiguredEndpoint(env, config, profile, "sts", "")
          .value_or(
              DefaultEndpoint("sts", region.empty() ? "us-east-1" : region));
  ChainContext ctx{
      config, std::make_shared<StsClient>(sts_endpoint,
                                          region.empty() ? "us-east-1" : region,
                                          options.transport)};

  // 2. Web identity from the environment.
  auto role_arn = GetEnv(env, "AWS_ROLE_ARN");
  auto token_file = GetEnv(env, "AWS_WEB_IDENTITY_TOKEN_FILE");
  if (role_arn && token_file) {
    return WebIdentityProvider(
        ctx.sts, *role_arn, *token_file,
        GetEnv(env, "AWS_ROLE_SESSION_NAME").value_or(""));
  }

  // 3. The profile.
  const bool profile_named =
      !options.profile.empty() || GetEnv(env, "AWS_PROFILE").has_value();
  if (profile_named && !config.HasProfile(profile)) {
    return InvalidArgument("profile \"" + profile + "\" not found in " +
                           config.config_path + " or " +
                           config.credentials_path);
  }
  std::set<std::string> visited;
  CRUNCHER_ASSIGN_OR_RETURN(std::shared_ptr<CredentialsProvider> from_profile,
                            ProfileProvider(ctx, profile, visited));
  if (from_profile) return from_profile;

  // 4. Container credentials.
  if (auto container = ContainerProvider(env, options.transport)) {
    return container;
  }

  // 5. IMDS.
  std::string tried = "environment, web identity, profile \"" + profile +
                      "\" (" + config.config_path + ", " +
                      config.credentials_path + "), container endpoint";
  auto disabled = GetEnv(env, "AWS_EC2_METADATA_DISABLED");
  if (disabled &&
      (*disabled == "true" || *disabled == "TRUE" || *disabled == "True")) {
    return NotFound(
        "no AWS credentials found; tried " + tried +
        " (instance metadata disabled by AWS_EC2_METADATA_DISABLED)");
  }
  return ImdsProvider(env, options.transport, options.imds_timeout_ms, tried);
}

}  // namespace cruncher::aws
