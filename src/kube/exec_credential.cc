#include "kube/exec_credential.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/encoding.h"
#include "kube/encoding.h"

namespace cruncher::kube {
namespace {

using nlohmann::json;

// The last lines of a plugin's stderr as one line, for an error message.
std::string OneLineTail(std::string_view text, std::size_t max_chars = 512) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += " | ";
    } else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
      out.push_back(c);
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '|')) {
    out.pop_back();
  }
  if (out.size() > max_chars) out = "..." + out.substr(out.size() - max_chars);
  return out;
}

Result<std::string> OptionalString(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return InvalidArgument(std::string("status.") + key + " is not a string");
  }
  return it->get<std::string>();
}

}  // namespace

std::string ExecInfoJson(const ExecConfig& config,
                         const ExecClusterInfo& cluster) {
  json spec = {{"interactive", false}};
  if (config.provide_cluster_info) {
    json c = {{"server", cluster.server}};
    if (!cluster.tls_server_name.empty()) {
      c["tls-server-name"] = cluster.tls_server_name;
    }
    if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
    if (!cluster.certificate_authority_pem.empty()) {
      c["certificate-authority-data"] =
          Base64Encode(cluster.certificate_authority_pem);
    }
    spec["cluster"] = std::move(c);
  }
  return json{{"apiVersion", config.api_version},
              {"kind", "ExecCredential"},
              {"spec", std::move(spec)}}
      .dump();
}

Result<Credentials> ParseExecCredential(std::string_view output,
                                        std::string_view api_version) {
  json doc;
  try {
    doc = json::parse(output);
  } catch (const json::parse_error& e) {
    return InvalidArgument("output is not JSON (parse error at byte " +
                           std::to_string(e.byte) +
                           "); a plugin must print one ExecCredential object");
  } catch (const json::exception&) {  // a number overflowing a double
    return InvalidArgument(
        "output is not valid JSON (a number out of range); a plugin must "
        "print one ExecCredential object");
  }
  if (!doc.is_object()) {
    return InvalidArgument("output is not a JSON object");
  }
  auto kind = doc.find("kind");
  if (kind == doc.end() || !kind->is_string() ||
      kind->get<std::string>() != "ExecCredential") {
    return InvalidArgument("output's kind is " +
                           (kind != doc.end() && kind->is_string()
                                ? "\"" + kind->get<std::string>() + "\""
                                : std::string("missing")) +
                           ", not \"ExecCredential\"");
  }
  auto version = doc.find("apiVersion");
  if (version == doc.end() || !version->is_string() ||
      version->get<std::string>() != api_version) {
    return InvalidArgument("output's apiVersion is " +
                           (version != doc.end() && version->is_string()
                                ? "\"" + version->get<std::string>() + "\""
                                : std::string("missing")) +
                           ", but the kubeconfig asks for \"" +
                           std::string(api_version) + "\"");
  }
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    return InvalidArgument("output has no status object");
  }
  Credentials creds;
  CRUNCHER_ASSIGN_OR_RETURN(creds.token, OptionalString(*status, "token"));
  CRUNCHER_RETURN_IF_ERROR(
      CheckBearerToken(creds.token).WithContext("status.token"));
  CRUNCHER_ASSIGN_OR_RETURN(creds.client_certificate_pem,
                            OptionalString(*status, "clientCertificateData"));
  CRUNCHER_ASSIGN_OR_RETURN(creds.client_key_pem,
                            OptionalString(*status, "clientKeyData"));
  if (creds.client_certificate_pem.empty() != creds.client_key_pem.empty()) {
    return InvalidArgument(
        "status has only one of clientCertificateData and clientKeyData");
  }
  if (creds.token.empty() && creds.client_certificate_pem.empty()) {
    return InvalidArgument(
        "status has neither a token nor clientCertificateData and "
        "clientKeyData");
  }
  CRUNCHER_ASSIGN_OR_RETURN(std::string expiry,
                            OptionalString(*status, "expirationTimestamp"));
  if (!expiry.empty()) {
    auto t = ParseRfc3339Time(expiry);
    if (!t.ok()) return t.status().WithContext("status.expirationTimestamp");
    creds.expires_at = *t;
  }
  return creds;
}

ExecCredentialProvider::ExecCredentialProvider(
    ExecConfig config, ExecClusterInfo cluster,
    std::shared_ptr<ProcessRunner> runner, const Clock& clock,
    ExecProviderOptions options)
    : config_(std::move(config)),
      cluster_(std::move(cluster)),
      runner_(std::move(runner)),
      clock_(clock),
      options_(options) {}

Result<Credentials> ExecCredentialProvider::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  const Millis now = clock_.NowMillis();
  if (cached_ && (!cached_->expires_at || now < cached_until_)) {
    return *cached_;
  }
  auto fresh = RunPlugin();
  if (fresh.ok()) {
    cached_ = *fresh;
    if (fresh->expires_at) {
      cached_until_ = std::max(*fresh->expires_at - options_.expiry_margin_ms,
                               now + options_.min_lifetime_ms);
    }
    return fresh;
  }
  if (cached_ && cached_->expires_at && now < *cached_->expires_at) {
    return *cached_;
  }
  return fresh.status();
}

void ExecCredentialProvider::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  cached_.reset();
}

Result<Credentials> ExecCredentialProvider::RunPlugin() {
  ProcessRequest request;
  request.command = config_.command;
  request.args = config_.args;
  request.env = config_.env;
  request.env.emplace_back("KUBERNETES_EXEC_INFO",
                           ExecInfoJson(config_, cluster_));
  request.timeout_ms = options_.timeout_ms;
  request.max_stdout_bytes = options_.max_output_bytes;
  const std::string where =
      config_.where + ": plugin \"" + config_.command + "\"";
  auto ran = runner_->Run(request);
  if (!ran.ok()) {
    Status st = ran.status();
    if (st.code() == StatusCode::kNotFound && !config_.install_hint.empty()) {
      st = NotFound(st.message() + " (" + OneLineTail(config_.install_hint) +
                    ")");
    }
    return st.WithContext(where);
  }
  if (ran->exit_code != 0) {
    std::string message =
        "exited with status " + std::to_string(ran->exit_code);
    const std::string tail = OneLineTail(ran->stderr_tail);
    if (!tail.empty()) message += ": " + tail;
    return Unavailable(std::move(message)).WithContext(where);
  }
  auto creds = ParseExecCredential(ran->stdout_data, config_.api_version);
  if (!creds.ok()) return creds.status().WithContext(where);
  return creds;
}

}  // namespace cruncher::kube
