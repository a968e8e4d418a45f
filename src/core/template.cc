#include "core/template.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <system_error>
#include <vector>

#include "core/job.h"
#include "core/job_name.h"

namespace cruncher {
namespace {

using nlohmann::json;

// RFC 6901: "~" is written "~0" and "/" is written "~1" in a pointer token.
std::string EscapePointerToken(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out.push_back(c);
  }
  return out;
}

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// If `text` is exactly one placeholder ("$x" or "${x}"), returns its name.
std::optional<std::string> LonePlaceholder(std::string_view text) {
  if (text.size() < 2 || text[0] != '$') return std::nullopt;
  std::string_view rest = text.substr(1);
  if (rest.front() == '{') {
    if (rest.back() != '}' || rest.size() < 3) return std::nullopt;
    rest = rest.substr(1, rest.size() - 2);
  }
  if (!IsNameStart(rest.front())) return std::nullopt;
  for (char c : rest) {
    if (!IsNameChar(c)) return std::nullopt;
  }
  return std::string(rest);
}

std::string PointerText(const std::string& pointer) {
  return pointer.empty() ? "/" : pointer;
}

// YAML 1.2 core schema resolution of an untagged plain scalar. An integer
// beyond 64 bits stays text, as before; a float a double cannot hold
// (1e999 overflows, 1e-99999 and the subnormal 1e-310 underflow) is an
// error: no Job field takes such a number, and keeping it would silently
// change the template's value.
Result<json> ResolvePlainScalar(const std::string& s,
                                const std::string& pointer) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat(
      "[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    return json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return json(true);
  if (s == "false" || s == "False" || s == "FALSE") return json(false);
  if (std::regex_match(s, kInt)) {
    long long value = 0;
    const char* first = s.data() + (s.front() == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(first, s.data() + s.size(), value);
    if (ec == std::errc() && end == s.data() + s.size()) return json(value);
    return json(s);
  }
  if (std::regex_match(s, kFloat)) {
    errno = 0;
    char* end = nullptr;
    const double value = std::strtod(s.c_str(), &end);
    if (errno == ERANGE || end != s.c_str() + s.size()) {
      return InvalidArgument("the number " + s + " at " + PointerText(pointer) +
                             " is out of the range of a double; quote it to "
                             "keep it as text");
    }
    return json(value);
  }
  return json(s);
}

// The first placeholder ($name or ${...}) in `text`, if any; `$$` is skipped
// as the escaped `$` it is in values.
std::optional<std::string> FirstPlaceholder(std::string_view text) {
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$') continue;
    const char next = text[i + 1];
    if (next == '$') {
      ++i;
    } else if (next == '{') {
      const size_t close = text.find('}', i + 2);
      return std::string(text.substr(i, close == std::string_view::npos
                                            ? std::string_view::npos
                                            : close - i + 1));
    } else if (IsNameStart(next)) {
      size_t end = i + 1;
      while (end < text.size() && IsNameChar(text[end])) ++end;
      return std::string(text.substr(i, end - i));
    }
  }
  return std::nullopt;
}

Result<json> YamlToJson(const YAML::Node& node, const std::string& pointer,
                        std::set<std::string>& typed_slots) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      // yaml-cpp tags quoted scalars "!" and untagged plain ones "?".
      if (node.Tag() != "?") return json(text);
      if (LonePlaceholder(text)) {
        typed_slots.insert(pointer);
        return json(text);
      }
      return ResolvePlainScalar(text, pointer);
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      size_t i = 0;
      for (const auto& item : node) {
        CRUNCHER_ASSIGN_OR_RETURN(
            json value,
            YamlToJson(item, pointer + "/" + std::to_string(i++), typed_slots));
        out.push_back(std::move(value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.as<std::string>();
        // Keys are never substituted: a message choosing label, annotation
        // or selector keys could collide with the template's own keys and
        // would make every message's Job a different shape. A placeholder
        // left there would reach the API server as literal text and fail
        // (or worse, succeed) for every message, so it is refused here.
        if (auto placeholder = FirstPlaceholder(key)) {
          return InvalidArgument(
              "placeholders are only substituted in values; found " +
              *placeholder + " in a key at " + PointerText(pointer));
        }
        CRUNCHER_ASSIGN_OR_RETURN(
            json value,
            YamlToJson(kv.second, pointer + "/" + EscapePointerToken(key),
                       typed_slots));
        out[key] = std::move(value);
      }
      return out;
    }
    case YAML::NodeType::Undefined:
      break;
  }
  return json(nullptr);
}

// The JSON pointers of the strings the kubelet expands $(VAR) in: each
// container's and init container's command and args words, env values and
// volume mounts' subPathExpr (k8s.io/kubernetes/pkg/kubelet: command and
// args in ExpandContainerCommandAndArgs, env in makeEnvironmentVariables,
// subPathExpr in ExpandContainerVolumeMounts).
std::set<std::string> KubeletExpandedFields(const json& manifest) {
  std::set<std::string> out;
  const json::json_pointer pod_spec_pointer("/spec/template/spec");
  if (!manifest.contains(pod_spec_pointer)) return out;
  const json& pod_spec = manifest[pod_spec_pointer];
  if (!pod_spec.is_object()) return out;
  auto add_list = [&out](const json& c, const std::string& base,
                         const char* key, const char* field) {
    auto list = c.find(key);
    if (list == c.end() || !list->is_array()) return;
    for (size_t j = 0; j < list->size(); ++j) {
      std::string pointer = base + "/" + key + "/" + std::to_string(j);
      if (field == nullptr) {
        out.insert(pointer);
      } else if ((*list)[j].is_object() && (*list)[j].contains(field)) {
        out.insert(pointer + "/" + field);
      }
    }
  };
  for (const char* kind : {"containers", "initContainers"}) {
    auto containers = pod_spec.find(kind);
    if (containers == pod_spec.end() || !containers->is_array()) continue;
    for (size_t i = 0; i < containers->size(); ++i) {
      const json& c = (*containers)[i];
      if (!c.is_object()) continue;
      std::string base =
          "/spec/template/spec/" + std::string(kind) + "/" + std::to_string(i);
      add_list(c, base, "command", nullptr);
      add_list(c, base, "args", nullptr);
      add_list(c, base, "env", "value");
      add_list(c, base, "volumeMounts", "subPathExpr");
    }
  }
  return out;
}

// Where SubstituteTree finds the template's typed slots and kubelet fields.
struct Slots {
  const std::set<std::string>& typed;
  const std::set<std::string>& kubelet_expanded;
};

Status SubstituteTree(json& node, const std::string& pointer,
                      const Slots& slots, const TaskVariables& vars) {
  if (node.is_string()) {
    const std::string& text = node.get_ref<const std::string&>();
    if (slots.typed.count(pointer)) {
      auto name = LonePlaceholder(text);
      const json* value = name ? vars.Find(*name) : nullptr;
      if (value && (value->is_number() || value->is_boolean())) {
        node = *value;
        return Status::Ok();
      }
    }
    auto substituted = SubstitutePlaceholders(
        text, vars,
        slots.kubelet_expanded.count(pointer) ? FieldExpansion::kKubelet
                                              : FieldExpansion::kNone);
    if (!substituted.ok()) {
      return substituted.status().WithContext(
          "at " + (pointer.empty() ? "/" : pointer));
    }
    node = std::move(substituted).value();
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      CRUNCHER_RETURN_IF_ERROR(SubstituteTree(
          node[i], pointer + "/" + std::to_string(i), slots, vars));
    }
  } else if (node.is_object()) {
    for (auto& [key, value] : node.items()) {
      CRUNCHER_RETURN_IF_ERROR(SubstituteTree(
          value, pointer + "/" + EscapePointerToken(key), slots, vars));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> SubstitutePlaceholders(std::string_view text,
                                           const TaskVariables& vars,
                                           FieldExpansion expansion) {
  const bool kubelet = expansion == FieldExpansion::kKubelet;
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out.push_back(c);
      continue;
    }
    char next = text[i + 1];
    if (next == '$') {
      // In a kubelet field the kubelet makes the literal `$` of `$$`: kept
      // as a pair, it cannot join a value's text into a `$(VAR)`.
      out.append(kubelet ? "$$" : "$");
      ++i;
      continue;
    }
    std::string name;
    size_t end = i + 1;
    if (next == '{') {
      size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        return InvalidArgument("unterminated ${ in \"" + std::string(text) +
                               "\"");
      }
      name = std::string(text.substr(i + 2, close - i - 2));
      bool valid = !name.empty() && IsNameStart(name[0]);
      for (char n : name) valid = valid && IsNameChar(n);
      if (!valid) {
        return InvalidArgument("invalid placeholder ${" + name + "}");
      }
      end = close + 1;
    } else if (IsNameStart(next)) {
      while (end < text.size() && IsNameChar(text[end])) ++end;
      name = std::string(text.substr(i + 1, end - i - 1));
    } else {
      out.push_back(c);  // "$(" and friends are not ours
      continue;
    }
    const json* value = vars.Find(name);
    if (value == nullptr) {
      return InvalidArgument("the message has no variable \"" + name +
                             "\" required by the template");
    }
    std::string value_text = TaskVariables::Text(*value);
    if (value_text.find('\0') != std::string::npos) {
      return InvalidArgument("value of '" + name +
                             "' contains a NUL character, which would cut it "
                             "short in a process argument or environment");
    }
    for (char v : value_text) {
      if (v == '$' && kubelet) out.push_back('$');
      out.push_back(v);
    }
    i = end - 1;
  }
  return out;
}

Result<JobTemplate> JobTemplate::Parse(std::string_view text,
                                       std::string_view source) {
  auto fail = [&](const std::string& why) {
    return InvalidArgument("template " + std::string(source) + ": " + why);
  };
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return fail(std::string("not valid YAML or JSON: ") + e.what());
  }
  // One Job per message: a second document would be ignored silently. Empty
  // documents (a leading or trailing ---) are no second manifest.
  std::erase_if(documents, [](const YAML::Node& d) { return d.IsNull(); });
  if (documents.size() > 1) {
    return fail("holds " + std::to_string(documents.size()) +
                " YAML documents (separated by ---); it must hold one Job "
                "manifest");
  }
  const YAML::Node root = documents.empty() ? YAML::Node() : documents[0];
  if (!root.IsMap()) return fail("must be a mapping (a Job manifest)");
  JobTemplate tmpl;
  try {
    auto manifest = YamlToJson(root, "", tmpl.typed_slots_);
    if (!manifest.ok()) return fail(manifest.status().message());
    tmpl.manifest_ = std::move(manifest).value();
  } catch (const YAML::Exception& e) {
    return fail(std::string("unsupported YAML: ") + e.what());
  }
  json& m = tmpl.manifest_;
  if (!m.contains("kind") || m["kind"] != "Job") {
    return fail("kind must be Job");
  }
  const json::json_pointer containers("/spec/template/spec/containers");
  if (!m.contains(containers) || !m[containers].is_array() ||
      m[containers].empty() || !m[containers][0].is_object()) {
    return fail(
        "spec.template.spec.containers must list at least one container");
  }
  if (!m.contains("metadata") || !m["metadata"].is_object()) {
    m["metadata"] = json::object();
  }
  json& md = m["metadata"];
  std::string prefix;
  if (md.contains("generateName") && md["generateName"].is_string()) {
    prefix = md["generateName"].get<std::string>();
  } else if (md.contains("name") && md["name"].is_string()) {
    prefix = md["name"].get<std::string>() + "-";
  }
  if (prefix.find('$') != std::string::npos) {
    return fail("metadata.generateName/name must not contain placeholders");
  }
  tmpl.name_prefix_ = SanitizeJobNamePrefix(prefix);
  tmpl.kubelet_expanded_ = KubeletExpandedFields(m);
  md.erase("generateName");
  md.erase("name");
  return tmpl;
}

Result<JobTemplate> JobTemplate::Load(const std::string& path) {
  // An ifstream opens a directory and reads nothing from it, which would
  // then be reported as an empty (non-mapping) manifest.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument("template " + path +
                           " is a directory, not a Job manifest file");
  }
  std::ifstream in(path);
  if (!in) return NotFound("cannot read template file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return Parse(buffer.str(), path);
}

Result<nlohmann::json> JobTemplate::Render(const TaskVariables& vars) const {
  json out = manifest_;
  CRUNCHER_RETURN_IF_ERROR(
      SubstituteTree(out, "", Slots{typed_slots_, kubelet_expanded_}, vars));
  return out;
}

Result<nlohmann::json> JobTemplate::RenderForMessage(
    const Message& message, std::string_view queue) const {
  CRUNCHER_ASSIGN_OR_RETURN(TaskVariables vars,
                            TaskVariables::FromBody(message.body));
  CRUNCHER_ASSIGN_OR_RETURN(json job, Render(vars));
  json& md = job["metadata"];
  md["name"] = JobNameFor(name_prefix_, queue, message.id);
  if (!md.contains("labels") || !md["labels"].is_object()) {
    md["labels"] = json::object();
  }
  md["labels"][std::string(kManagedByLabel)] = kManagedByValue;
  md["labels"][std::string(kQueueLabel)] = QueueLabelFor(queue);
  if (!md.contains("annotations") || !md["annotations"].is_object()) {
    md["annotations"] = json::object();
  }
  json& ann = md["annotations"];
  ann[std::string(kTaskAnnotation)] = message.body;
  ann[std::string(kMessageIdAnnotation)] = message.id;
  ann[std::string(kQueueAnnotation)] = std::string(queue);
  ann[std::string(kReceiveCountAnnotation)] =
      std::to_string(message.receive_count);
  if (!job.contains("apiVersion")) job["apiVersion"] = "batch/v1";
  return job;
}

namespace {

// `$name` or `${` (a `$$` is a literal dollar, `$(` Kubernetes' own).
bool HasPlaceholder(std::string_view text) {
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$') continue;
    const char next = text[i + 1];
    if (next == '$') {
      ++i;
      continue;
    }
    if (next == '{' || next == '_' ||
        std::isalpha(static_cast<unsigned char>(next))) {
      return true;
    }
  }
  return false;
}

bool AnyPlaceholder(const json& node) {
  if (node.is_string())
    return HasPlaceholder(node.get_ref<const std::string&>());
  if (node.is_object() || node.is_array()) {
    for (const auto& child : node) {
      if (AnyPlaceholder(child)) return true;
    }
  }
  return false;
}

}  // namespace

json JobTemplate::SampleManifest(bool numbers) const {
  json out = manifest_;
  if (numbers) {
    for (const std::string& slot : typed_slots_) {
      out[json::json_pointer(slot)] = 1;
    }
  }
  out["metadata"]["name"] = name_prefix_ + std::string(kJobNameHashLength, '0');
  return out;
}

bool JobTemplate::FilledByMessage(std::string_view field_path) const {
  // "a.b[0].c" walks a → b → 0 → c; anything unexpected is "not found".
  const json* node = &manifest_;
  size_t i = 0;
  while (i < field_path.size()) {
    if (field_path[i] == '.') {
      ++i;
      continue;
    }
    if (field_path[i] == '[') {
      const size_t close = field_path.find(']', i);
      if (close == std::string_view::npos) return false;
      const std::string_view digits = field_path.substr(i + 1, close - i - 1);
      if (node->is_object()) {
        // "limits[cpu]": the API server's spelling of a map's key.
        const auto it = node->find(std::string(digits));
        if (it == node->end()) return false;
        node = &*it;
        i = close + 1;
        continue;
      }
      if (!node->is_array()) return false;
      size_t index = 0;
      if (digits.empty() || digits.size() > 6) return false;
      for (char c : digits) {
        if (c < '0' || c > '9') return false;
        index = index * 10 + static_cast<size_t>(c - '0');
      }
      if (index >= node->size()) return false;
      node = &(*node)[index];
      i = close + 1;
      continue;
    }
    const size_t end = field_path.find_first_of(".[", i);
    const std::string key(field_path.substr(i, end - i));
    if (!node->is_object()) return false;
    const auto it = node->find(key);
    if (it == node->end()) return false;
    node = &*it;
    i = end == std::string_view::npos ? field_path.size() : end;
  }
  return AnyPlaceholder(*node);
}

}  // namespace cruncher
