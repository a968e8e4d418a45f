#include "kube/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "kube/encoding.h"
#include "kube/file_reader.h"

extern char** environ;

namespace cruncher::kube {
namespace {

using YAML::Node;

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// `p` resolved against `dir` unless empty or absolute (client-go's
// ResolvePaths).
std::string ResolvePath(const std::string& dir, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(dir) / p).lexically_normal().string();
}

const char* NodeKind(const Node& n) {
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  if (n.IsScalar()) return "a scalar";
  return "null";
}

// Reads the fields of one YAML mapping, each error naming the field under
// `where`. Absent and null fields read as empty; any other YAML shape than
// the expected one is an error, never an exception.
class MapReader {
 public:
  MapReader(const Node& node, std::string where)
      : node_(node), where_(std::move(where)) {}

  // The node must be a mapping (or null: an empty mapping).
  Status Check() const {
    if (!node_.IsDefined() || node_.IsNull() || node_.IsMap()) return {};
    return InvalidArgument(where_ + ": expected a mapping, found " +
                           NodeKind(node_));
  }

  Node Find(std::string_view key) const {
    if (node_.IsMap()) {
      for (auto it = node_.begin(); it != node_.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == key) {
          return it->second;
        }
      }
    }
    return Node(YAML::NodeType::Null);
  }

  bool Has(std::string_view key) const {
    const Node n = Find(key);
    return n.IsDefined() && !n.IsNull();
  }

  // "<where>.key", or "<where>key" when `where` is a file's "kubeconfig
  // /x: " prefix.
  std::string Where(std::string_view key) const {
    if (!where_.empty() && where_.back() == ' ')
      return where_ + std::string(key);
    return where_ + "." + std::string(key);
  }

  Result<std::string> String(std::string_view key) const {
    const Node n = Find(key);
    if (!n.IsDefined() || n.IsNull()) return std::string();
    if (!n.IsScalar()) {
      return InvalidArgument(Where(key) + ": expected a string, found " +
                             NodeKind(n));
    }
    return n.Scalar();
  }

  // A base64 `*-data` field, decoded.
  Result<std::string> Data(std::string_view key) const {
    CRUNCHER_ASSIGN_OR_RETURN(std::string text, String(key));
    auto decoded = DecodeBase64Field(text);
    if (!decoded.ok()) return decoded.status().WithContext(Where(key));
    return decoded;
  }

  Result<bool> Bool(std::string_view key) const {
    const Node n = Find(key);
    if (!n.IsDefined() || n.IsNull()) return false;
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      return InvalidArgument(Where(key) + ": expected true or false");
    }
    return value;
  }

  Result<std::vector<std::string>> Strings(std::string_view key) const {
    const Node n = Find(key);
    std::vector<std::string> out;
    if (!n.IsDefined() || n.IsNull()) return out;
    if (!n.IsSequence()) {
      return InvalidArgument(
          Where(key) + ": expected a list of strings, found " + NodeKind(n));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) {
        return InvalidArgument(Where(key) + "[" + std::to_string(i) +
                               "]: expected a string, found " + NodeKind(n[i]));
      }
      out.push_back(n[i].Scalar());
    }
    return out;
  }

 private:
  Node node_;
  std::string where_;
};

struct ExecEntry {
  std::string api_version;
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string interactive_mode;
  bool provide_cluster_info = false;
  std::string install_hint;
};

// Every entry remembers the file it came from: errors name it and relative
// paths resolve against its directory.
struct ClusterEntry {
  std::string file, dir;
  std::string server, tls_server_name, proxy_url;
  std::string ca_file, ca_data;
  bool insecure_skip_tls_verify = false;
};

struct UserEntry {
  std::string file, dir;
  std::string token, token_file;
  std::string cert_file, cert_data, key_file, key_data;
  std::optional<ExecEntry> exec;
  std::vector<std::string> unsupported;  // fields set that we refuse to use
};

struct ContextEntry {
  std::string file;
  std::string cluster, user, namespace_name;
};

struct KubeconfigFile {
  std::map<std::string, ClusterEntry> clusters;
  std::map<std::string, UserEntry> users;
  std::map<std::string, ContextEntry> contexts;
  std::string current_context;
};

Result<ClusterEntry> ParseCluster(const MapReader& m) {
  ClusterEntry c;
  CRUNCHER_RETURN_IF_ERROR(m.Check());
  CRUNCHER_ASSIGN_OR_RETURN(c.server, m.String("server"));
  CRUNCHER_ASSIGN_OR_RETURN(c.tls_server_name, m.String("tls-server-name"));
  CRUNCHER_ASSIGN_OR_RETURN(c.proxy_url, m.String("proxy-url"));
  CRUNCHER_ASSIGN_OR_RETURN(c.ca_file, m.String("certificate-authority"));
  CRUNCHER_ASSIGN_OR_RETURN(c.ca_data, m.Data("certificate-authority-data"));
  CRUNCHER_ASSIGN_OR_RETURN(c.insecure_skip_tls_verify,
                            m.Bool("insecure-skip-tls-verify"));
  return c;
}

Result<ExecEntry> ParseExec(const MapReader& m) {
  ExecEntry e;
  CRUNCHER_RETURN_IF_ERROR(m.Check());
  CRUNCHER_ASSIGN_OR_RETURN(e.api_version, m.String("apiVersion"));
  CRUNCHER_ASSIGN_OR_RETURN(e.command, m.String("command"));
  CRUNCHER_ASSIGN_OR_RETURN(e.args, m.Strings("args"));
  CRUNCHER_ASSIGN_OR_RETURN(e.interactive_mode, m.String("interactiveMode"));
  CRUNCHER_ASSIGN_OR_RETURN(e.provide_cluster_info,
                            m.Bool("provideClusterInfo"));
  CRUNCHER_ASSIGN_OR_RETURN(e.install_hint, m.String("installHint"));
  const Node env = m.Find("env");
  if (env.IsDefined() && !env.IsNull()) {
    if (!env.IsSequence()) {
      return InvalidArgument(m.Where("env") + ": expected a list, found " +
                             NodeKind(env));
    }
    for (std::size_t i = 0; i < env.size(); ++i) {
      MapReader var(env[i], m.Where("env") + "[" + std::to_string(i) + "]");
      CRUNCHER_RETURN_IF_ERROR(var.Check());
      CRUNCHER_ASSIGN_OR_RETURN(std::string name, var.String("name"));
      CRUNCHER_ASSIGN_OR_RETURN(std::string value, var.String("value"));
      if (name.empty() || name.find('=') != std::string::npos) {
        return InvalidArgument(var.Where("name") +
                               ": must be a non-empty name without '='");
      }
      e.env.emplace_back(std::move(name), std::move(value));
    }
  }
  return e;
}

Result<UserEntry> ParseUser(const MapReader& m) {
  UserEntry u;
  CRUNCHER_RETURN_IF_ERROR(m.Check());
  CRUNCHER_ASSIGN_OR_RETURN(u.token, m.String("token"));
  CRUNCHER_RETURN_IF_ERROR(
      CheckBearerToken(u.token).WithContext(m.Where("token")));
  CRUNCHER_ASSIGN_OR_RETURN(u.token_file, m.String("tokenFile"));
  CRUNCHER_ASSIGN_OR_RETURN(u.cert_file, m.String("client-certificate"));
  CRUNCHER_ASSIGN_OR_RETURN(u.cert_data, m.Data("client-certificate-data"));
  CRUNCHER_ASSIGN_OR_RETURN(u.key_file, m.String("client-key"));
  CRUNCHER_ASSIGN_OR_RETURN(u.key_data, m.Data("client-key-data"));
  if (m.Has("exec")) {
    CRUNCHER_ASSIGN_OR_RETURN(
        u.exec, ParseExec(MapReader(m.Find("exec"), m.Where("exec"))));
  }
  for (const char* field : {"username", "password", "auth-provider", "as",
                            "as-uid", "as-groups", "as-user-extra"}) {
    if (m.Has(field)) u.unsupported.emplace_back(field);
  }
  return u;
}

Result<ContextEntry> ParseContext(const MapReader& m) {
  ContextEntry c;
  CRUNCHER_RETURN_IF_ERROR(m.Check());
  CRUNCHER_ASSIGN_OR_RETURN(c.cluster, m.String("cluster"));
  CRUNCHER_ASSIGN_OR_RETURN(c.user, m.String("user"));
  CRUNCHER_ASSIGN_OR_RETURN(c.namespace_name, m.String("namespace"));
  return c;
}

// Parses the named list `list_key` ("clusters") of {name, `item_key`: {...}}
// entries into `out`, refusing duplicate names as kubectl does.
template <typename Entry, typename ParseFn>
Status ParseNamedList(const MapReader& root, const char* list_key,
                      const char* item_key, ParseFn parse,
                      std::map<std::string, Entry>& out) {
  const Node list = root.Find(list_key);
  if (!list.IsDefined() || list.IsNull()) return {};
  if (!list.IsSequence()) {
    return InvalidArgument(root.Where(list_key) + ": expected a list, found " +
                           NodeKind(list));
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    MapReader item(list[i],
                   root.Where(list_key) + "[" + std::to_string(i) + "]");
    CRUNCHER_RETURN_IF_ERROR(item.Check());
    CRUNCHER_ASSIGN_OR_RETURN(std::string name, item.String("name"));
    if (name.empty()) {
      return InvalidArgument(item.Where("name") + ": is not set");
    }
    const std::string where =
        root.Where(list_key) + "[" + name + "]." + item_key;
    CRUNCHER_ASSIGN_OR_RETURN(Entry entry,
                              parse(MapReader(item.Find(item_key), where)));
    if (!out.emplace(name, std::move(entry)).second) {
      return InvalidArgument(root.Where(list_key) + ": duplicate name " +
                             Quote(name));
    }
  }
  return {};
}

Result<KubeconfigFile> ParseKubeconfig(const std::string& text,
                                       const std::string& path) {
  const std::string where = "kubeconfig " + path;
  KubeconfigFile file;
  try {
    const Node root = YAML::Load(text);
    if (!root.IsDefined() || root.IsNull()) return file;  // empty file
    if (!root.IsMap()) {
      return InvalidArgument(where + ": not a kubeconfig (the document is " +
                             NodeKind(root) + ", not a mapping)");
    }
    // Fields are named after the file: "kubeconfig /x: clusters[0].name".
    MapReader named(root, where + ": ");
    auto field = [&](std::string_view key) { return named.Where(key); };
    CRUNCHER_ASSIGN_OR_RETURN(std::string kind, named.String("kind"));
    if (!kind.empty() && kind != "Config") {
      return InvalidArgument(field("kind") + ": " + Quote(kind) +
                             " is not \"Config\"");
    }
    CRUNCHER_ASSIGN_OR_RETURN(std::string version, named.String("apiVersion"));
    if (!version.empty() && version != "v1") {
      return InvalidArgument(field("apiVersion") + ": " + Quote(version) +
                             " is not \"v1\"");
    }
    CRUNCHER_RETURN_IF_ERROR(ParseNamedList<ClusterEntry>(
        named, "clusters", "cluster", ParseCluster, file.clusters));
    CRUNCHER_RETURN_IF_ERROR(ParseNamedList<UserEntry>(named, "users", "user",
                                                       ParseUser, file.users));
    CRUNCHER_RETURN_IF_ERROR(ParseNamedList<ContextEntry>(
        named, "contexts", "context", ParseContext, file.contexts));
    CRUNCHER_ASSIGN_OR_RETURN(file.current_context,
                              named.String("current-context"));
  } catch (const YAML::Exception& e) {
    std::string msg = where + ": not valid YAML: " + e.msg;
    if (!e.mark.is_null()) {
      msg += " (line " + std::to_string(e.mark.line + 1) + ", column " +
             std::to_string(e.mark.column + 1) + ")";
    }
    return InvalidArgument(std::move(msg));
  }
  std::error_code ec;  // only if the working directory is gone: keep `path`
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) absolute = path;
  const std::string dir = absolute.parent_path().lexically_normal().string();
  for (auto& [name, c] : file.clusters) c.file = path, c.dir = dir;
  for (auto& [name, u] : file.users) u.file = path, u.dir = dir;
  for (auto& [name, c] : file.contexts) c.file = path;
  return file;
}

// The files that were read, merged with kubectl's rules.
struct MergedConfig {
  std::vector<std::string> files;
  KubeconfigFile config;
  bool empty() const {
    return config.clusters.empty() && config.users.empty() &&
           config.contexts.empty() && config.current_context.empty();
  }
  std::string Where() const {
    std::string joined;
    for (const auto& f : files) joined += (joined.empty() ? "" : ":") + f;
    return "kubeconfig " + joined;
  }
};

Result<MergedConfig> LoadAndMerge(const std::vector<std::string>& paths,
                                  bool require_files) {
  MergedConfig merged;
  std::set<std::string> seen;
  for (const std::string& path : paths) {
    if (path.empty() || !seen.insert(path).second) continue;
    auto text = ReadFileBounded(path, kMaxKubeconfigBytes);
    if (!text.ok()) {
      if (text.status().code() == StatusCode::kNotFound && !require_files) {
        continue;
      }
      return Status(text.status().code(),
                    "kubeconfig " + text.status().message());
    }
    CRUNCHER_ASSIGN_OR_RETURN(KubeconfigFile file,
                              ParseKubeconfig(*text, path));
    merged.files.push_back(path);
    // First definition of a name wins: later files only add new names.
    merged.config.clusters.merge(file.clusters);
    merged.config.users.merge(file.users);
    merged.config.contexts.merge(file.contexts);
    if (merged.config.current_context.empty()) {
      merged.config.current_context = file.current_context;
    }
  }
  return merged;
}

}  // namespace

bool IsValidNamespaceName(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

namespace {

Status CheckNamespace(const std::string& ns, const std::string& where) {
  if (IsValidNamespaceName(ns)) return {};
  return InvalidArgument(where + ": namespace " + Quote(ns) +
                         " is not a valid name (lower-case letters, digits "
                         "and '-', at most 63)");
}

// The part of `server` after "scheme://" up to the path: [user@]host[:port].
// Why it is not a host and port the transport can use, or "" if it is.
std::string AuthorityProblem(std::string_view authority) {
  if (authority.empty()) return "no host";
  if (authority.find('@') != std::string_view::npos) {
    return "user information in the URL is not supported";
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return "the IPv6 address has no ']'";
    host = authority.substr(1, close - 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return "unexpected text after the IPv6 address";
    }
    if (!rest.empty()) port = rest.substr(1);
    if (host.empty() || host.find(':') == std::string_view::npos ||
        host.find_first_not_of("0123456789abcdefABCDEF:.") !=
            std::string_view::npos) {
      return "\"[" + std::string(host) + "]\" is not an IPv6 address";
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (host.empty()) return "no host";
    if (host.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") !=
        std::string_view::npos) {
      return "the host has characters a host name cannot have (an IPv6 "
             "address goes in [brackets])";
    }
  }
  if (authority.back() == ':' ||
      (!port.empty() &&
       (port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(port)) == 0 ||
        std::stoi(std::string(port)) > 65535))) {
    return "the port is not a number from 1 to 65535";
  }
  return "";
}

// `server` as the transport gets it: http(s)://host[:port][/path] without a
// trailing '/', checked here so that a typo is an error naming the file and
// field rather than a curl error at the first request.
Result<std::string> CheckServer(std::string server, const std::string& where) {
  if (server.empty()) return InvalidArgument(where + ".server: is not set");
  std::string shown;  // for the message: control bytes escaped
  for (char c : server) {
    const auto byte = static_cast<unsigned char>(c);
    shown += byte < 0x20 || byte == 0x7f ? "?" : std::string(1, c);
  }
  const auto invalid = [&](const std::string& why) {
    return InvalidArgument(where + ".server: " + Quote(shown) +
                           " is not an https:// (or http://) URL with a "
                           "host: " +
                           why);
  };
  const auto scheme_end = server.find("://");
  const std::string scheme =
      scheme_end == std::string::npos ? "" : server.substr(0, scheme_end);
  if (scheme != "https" && scheme != "http") {
    return invalid("the scheme is not https or http");
  }
  if (server.find_first_of(" \t?#") != std::string::npos || shown != server) {
    return invalid("spaces, control characters, '?' and '#' are not allowed");
  }
  const std::size_t authority_start = scheme_end + 3;
  const std::size_t path_start = server.find('/', authority_start);
  const std::string problem = AuthorityProblem(std::string_view(server).substr(
      authority_start, path_start == std::string::npos
                           ? std::string::npos
                           : path_start - authority_start));
  if (!problem.empty()) return invalid(problem);
  while (server.back() == '/') server.pop_back();
  return server;
}

Result<ExecConfig> ResolveExec(const ExecEntry& e, const std::string& dir,
                               const std::string& where) {
  ExecConfig x;
  x.where = where;
  if (e.api_version.empty()) {
    return InvalidArgument(where + ".apiVersion: is not set (use " +
                           std::string(kExecApiV1) + ")");
  }
  if (e.api_version != kExecApiV1 && e.api_version != kExecApiV1Beta1) {
    return InvalidArgument(where + ": apiVersion " + Quote(e.api_version) +
                           " is not supported (use " + std::string(kExecApiV1) +
                           " or " + std::string(kExecApiV1Beta1) + ")");
  }
  x.api_version = e.api_version;
  if (e.command.empty()) {
    return InvalidArgument(where + ".command: is not set");
  }
  // A bare name is looked up in PATH; a path is relative to the file.
  x.command = e.command.find('/') == std::string::npos
                  ? e.command
                  : ResolvePath(dir, e.command);
  x.args = e.args;
  x.env = e.env;
  x.provide_cluster_info = e.provide_cluster_info;
  x.install_hint = e.install_hint;
  if (e.interactive_mode == "Never") {
    x.interactive_mode = InteractiveMode::kNever;
  } else if (e.interactive_mode == "IfAvailable") {
    x.interactive_mode = InteractiveMode::kIfAvailable;
  } else if (e.interactive_mode == "Always") {
    return InvalidArgument(
        where +
        ".interactiveMode: Always needs a terminal, and cruncher "
        "never has one (use IfAvailable or Never)");
  } else if (e.interactive_mode.empty()) {
    if (e.api_version == kExecApiV1) {
      return InvalidArgument(where + ".interactiveMode: must be set for " +
                             std::string(kExecApiV1) +
                             " (Never or IfAvailable)");
    }
    x.interactive_mode = InteractiveMode::kIfAvailable;
  } else {
    return InvalidArgument(where +
                           ".interactiveMode: " + Quote(e.interactive_mode) +
                           " is not one of Never, IfAvailable, Always");
  }
  return x;
}

Status ResolveCluster(const std::string& name, const ClusterEntry& c,
                      ClusterConfig& out) {
  const std::string where = "kubeconfig " + c.file + ": clusters[" + name + "]";
  CRUNCHER_ASSIGN_OR_RETURN(out.server, CheckServer(c.server, where));
  if (!c.proxy_url.empty()) {
    return InvalidArgument(where + ".proxy-url: is not supported by cruncher");
  }
  out.tls_server_name = c.tls_server_name;
  out.insecure_skip_tls_verify = c.insecure_skip_tls_verify;
  if (!c.ca_data.empty()) {
    out.certificate_authority.data = c.ca_data;
  } else {
    out.certificate_authority.file = ResolvePath(c.dir, c.ca_file);
  }
  if (out.insecure_skip_tls_verify && !out.certificate_authority.empty()) {
    return InvalidArgument(where +
                           ": insecure-skip-tls-verify cannot be combined with "
                           "a certificate-authority");
  }
  return {};
}

Status ResolveUser(const std::string& name, const UserEntry& u,
                   ClusterConfig& out) {
  const std::string where = "kubeconfig " + u.file + ": users[" + name + "]";
  out.token_file_where = where + ".tokenFile";
  if (!u.unsupported.empty()) {
    return InvalidArgument(where + "." + u.unsupported.front() +
                           ": is not supported by cruncher (use a token, a "
                           "client certificate or an exec plugin)");
  }
  if (!u.cert_data.empty()) {
    out.client_certificate.data = u.cert_data;
  } else {
    out.client_certificate.file = ResolvePath(u.dir, u.cert_file);
  }
  if (!u.key_data.empty()) {
    out.client_key.data = u.key_data;
  } else {
    out.client_key.file = ResolvePath(u.dir, u.key_file);
  }
  if (out.client_certificate.empty() != out.client_key.empty()) {
    return InvalidArgument(
        where + ": " +
        (out.client_key.empty()
             ? "client-certificate is set without client-key"
             : "client-key is set without client-certificate"));
  }
  out.token = u.token;
  out.token_file = ResolvePath(u.dir, u.token_file);
  if (u.exec) {
    if (!out.token.empty() || !out.token_file.empty()) {
      return InvalidArgument(where +
                             ": both a token and an exec plugin are set; use "
                             "one of them");
    }
    CRUNCHER_ASSIGN_OR_RETURN(out.exec,
                              ResolveExec(*u.exec, u.dir, where + ".exec"));
  }
  return {};
}

Result<ClusterConfig> Resolve(const MergedConfig& merged,
                              const std::string& context_override,
                              const std::string& namespace_override) {
  const KubeconfigFile& config = merged.config;
  const std::string context_name =
      context_override.empty() ? config.current_context : context_override;
  if (context_name.empty()) {
    return NotFound(merged.Where() +
                    ": current-context is not set; pass --context");
  }
  auto ctx = config.contexts.find(context_name);
  if (ctx == config.contexts.end()) {
    return NotFound(merged.Where() + ": context " + Quote(context_name) +
                    " not found");
  }
  const std::string where =
      "kubeconfig " + ctx->second.file + ": contexts[" + context_name + "]";
  ClusterConfig out;
  out.source =
      "context " + Quote(context_name) + " of kubeconfig " + ctx->second.file;
  const std::string& cluster_name = ctx->second.cluster;
  if (cluster_name.empty()) {
    return InvalidArgument(where + ".cluster: is not set");
  }
  auto cluster = config.clusters.find(cluster_name);
  if (cluster == config.clusters.end()) {
    return NotFound(where + ": cluster " + Quote(cluster_name) + " not found");
  }
  CRUNCHER_RETURN_IF_ERROR(ResolveCluster(cluster_name, cluster->second, out));
  const std::string& user_name = ctx->second.user;
  if (!user_name.empty()) {  // no user: anonymous requests
    auto user = config.users.find(user_name);
    if (user == config.users.end()) {
      return NotFound(where + ": user " + Quote(user_name) + " not found");
    }
    CRUNCHER_RETURN_IF_ERROR(ResolveUser(user_name, user->second, out));
  }
  if (!namespace_override.empty()) {
    CRUNCHER_RETURN_IF_ERROR(CheckNamespace(namespace_override, "--namespace"));
    out.namespace_name = namespace_override;
  } else if (!ctx->second.namespace_name.empty()) {
    CRUNCHER_RETURN_IF_ERROR(
        CheckNamespace(ctx->second.namespace_name, where + ".namespace"));
    out.namespace_name = ctx->second.namespace_name;
  } else {
    out.namespace_name = "default";
  }
  return out;
}

std::vector<std::string> SplitPathList(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto colon = list.find(':', start);
    const auto end = colon == std::string::npos ? list.size() : colon;
    if (end > start) out.push_back(list.substr(start, end - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

std::string EnvValue(const EnvVars& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? "" : it->second;
}

}  // namespace

Result<ClusterConfig> LoadKubeConfigFiles(
    const std::vector<std::string>& paths, bool require_files,
    const std::string& context, const std::string& namespace_override) {
  CRUNCHER_ASSIGN_OR_RETURN(MergedConfig merged,
                            LoadAndMerge(paths, require_files));
  if (merged.empty()) {
    std::string joined;
    for (const auto& p : paths) joined += (joined.empty() ? "" : ":") + p;
    return NotFound("kubeconfig " + joined + ": no configuration found");
  }
  return Resolve(merged, context, namespace_override);
}

Result<ClusterConfig> LoadClusterConfig(const KubeConfigOptions& options) {
  if (!options.kubeconfig.empty()) {
    return LoadKubeConfigFiles({options.kubeconfig}, true, options.context,
                               options.namespace_override);
  }
  std::vector<std::string> paths;
  std::string looked_at;  // for the error when nothing is configured
  const std::string list = EnvValue(options.env, "KUBECONFIG");
  if (!list.empty()) {
    paths = SplitPathList(list);
    looked_at = "KUBECONFIG (" + list + ")";
  } else if (const std::string home = EnvValue(options.env, "HOME");
             !home.empty()) {
    paths.push_back(home + "/.kube/config");
    looked_at = paths.back();
  } else {
    looked_at = "~/.kube/config (HOME is not set)";
  }
  CRUNCHER_ASSIGN_OR_RETURN(MergedConfig merged, LoadAndMerge(paths, false));
  if (!merged.empty()) {
    return Resolve(merged, options.context, options.namespace_override);
  }
  if (options.context.empty() &&
      !EnvValue(options.env, "KUBERNETES_SERVICE_HOST").empty()) {
    return LoadInClusterConfig(options.env, options.in_cluster,
                               options.namespace_override);
  }
  return NotFound(
      "no Kubernetes configuration: " + looked_at +
      (merged.files.empty() ? " names no existing file" : " defines nothing") +
      ", no --kubeconfig was given, and KUBERNETES_SERVICE_HOST "
      "is not set (not running in a cluster)");
}

Result<std::shared_ptr<CredentialProvider>> NewCredentialProvider(
    const ClusterConfig& config, std::shared_ptr<ProcessRunner> runner,
    const Clock& clock, ExecProviderOptions exec_options) {
  if (config.exec) {
    ExecClusterInfo cluster{config.server, config.tls_server_name,
                            config.insecure_skip_tls_verify,
                            config.certificate_authority.data};
    if (config.exec->provide_cluster_info &&
        !config.certificate_authority.file.empty()) {
      auto ca = ReadFileBounded(config.certificate_authority.file,
                                kMaxKubeconfigBytes);
      if (!ca.ok()) {
        return ca.status().WithContext(config.source +
                                       ": certificate-authority");
      }
      cluster.certificate_authority_pem = std::move(ca).value();
    }
    return std::shared_ptr<CredentialProvider>(
        std::make_shared<ExecCredentialProvider>(
            *config.exec, std::move(cluster), std::move(runner), clock,
            exec_options));
  }
  if (!config.token_file.empty()) {
    return std::shared_ptr<CredentialProvider>(
        std::make_shared<TokenFileCredentialProvider>(
            config.token_file, config.token, clock, config.token_file_where));
  }
  return std::shared_ptr<CredentialProvider>(
      std::make_shared<StaticCredentialProvider>(config.token));
}

}  // namespace cruncher::kube
