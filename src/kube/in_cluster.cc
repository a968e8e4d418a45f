// In-cluster configuration (declared in kubeconfig.h): what client-go's
// rest.InClusterConfig and clientcmd's in-cluster namespace lookup do.
#include <string>

#include "kube/file_reader.h"
#include "kube/kubeconfig.h"

namespace cruncher::kube {
namespace {

constexpr std::size_t kMaxServiceAccountFileBytes = 1 << 20;

std::string Trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto first = s.find_first_not_of(ws);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(ws) - first + 1);
}

bool IsPort(const std::string& s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  const int port = std::stoi(s);
  return port >= 1 && port <= 65535;
}

}  // namespace

Result<ClusterConfig> LoadInClusterConfig(
    const EnvVars& env, const InClusterPaths& paths,
    const std::string& namespace_override) {
  const std::string where = "in-cluster configuration";
  auto get = [&](const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  std::string host = get("KUBERNETES_SERVICE_HOST");
  const std::string port = get("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return NotFound(where +
                    ": KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                    "must both be set (not running in a cluster)");
  }
  if (!IsPort(port)) {
    return InvalidArgument(where + ": KUBERNETES_SERVICE_PORT \"" + port +
                           "\" is not a port number");
  }
  if (host.find_first_of("/@ ") != std::string::npos) {
    return InvalidArgument(where + ": KUBERNETES_SERVICE_HOST \"" + host +
                           "\" is not a host name or address");
  }
  if (host.find(':') != std::string::npos && host.front() != '[') {
    host = "[" + host + "]";  // an IPv6 address
  }
  ClusterConfig out;
  out.source = where;
  out.server = "https://" + host + ":" + port;

  // The token is read now, so a pod without one fails at start-up; the
  // credential provider re-reads it as the kubelet rotates it.
  auto token = ReadFileBounded(paths.token_file, kMaxServiceAccountFileBytes);
  if (!token.ok()) return token.status().WithContext(where + ": token");
  out.token = Trim(*token);
  if (out.token.empty()) {
    return InvalidArgument(where + ": token: " + paths.token_file +
                           ": the token file is empty");
  }
  CRUNCHER_RETURN_IF_ERROR(CheckBearerToken(out.token).WithContext(
      where + ": token: " + paths.token_file));
  out.token_file = paths.token_file;
  out.token_file_where = where + ": token";

  auto ca = ReadFileBounded(paths.ca_file, kMaxKubeconfigBytes);
  if (!ca.ok()) return ca.status().WithContext(where + ": CA certificate");
  out.certificate_authority.file = paths.ca_file;

  std::string ns = namespace_override;
  std::string ns_where = "--namespace";
  if (ns.empty()) {
    ns = get("POD_NAMESPACE");
    ns_where = "POD_NAMESPACE";
  }
  if (ns.empty()) {
    auto file =
        ReadFileBounded(paths.namespace_file, kMaxServiceAccountFileBytes);
    if (file.ok()) ns = Trim(*file);
    ns_where = where + ": " + paths.namespace_file;
  }
  if (ns.empty()) ns = "default";
  if (!IsValidNamespaceName(ns)) {
    return InvalidArgument(ns_where + ": namespace \"" + ns +
                           "\" is not a valid name");
  }
  out.namespace_name = std::move(ns);
  return out;
}

}  // namespace cruncher::kube
