#include "cli/settings.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <system_error>

namespace cruncher::cli {
namespace {

using nlohmann::json;

constexpr char kRedacted[] = "<redacted>";

// The option's first long name ("queue-url"), or "" for options without one
// (positionals, -h only).
std::string LongName(const CLI::Option& opt) {
  return opt.get_lnames().empty() ? "" : opt.get_lnames().front();
}

bool IsFlag(const CLI::Option& opt) { return opt.get_expected_min() == 0; }

// The options ApplySettings sets: long-named and configurable (not --help,
// --version or --config).
std::vector<CLI::Option*> SettableOptions(CLI::App& cmd) {
  return cmd.get_options([](const CLI::Option* opt) {
    return opt->get_configurable() && !LongName(*opt).empty();
  });
}

// Every long flag any cruncher command takes, to tell a key meant for
// another command from a mistake.
void CollectLongNames(const CLI::App& app, std::set<std::string>& names) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_configurable() && !LongName(*opt).empty()) {
      names.insert(LongName(*opt));
    }
  }
  for (const CLI::App* sub : app.get_subcommands({})) {
    CollectLongNames(*sub, names);
  }
}

// YAML 1.2 core schema booleans.
std::optional<bool> YamlBool(const std::string& text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return std::nullopt;
}

// Hands `values` to the option as if given on the command line: the
// option's validators and conversion run, and its variable is set. Returns
// CLI11's complaint, or "".
std::string SetOption(CLI::Option& opt,
                      const std::vector<std::string>& values) {
  try {
    opt.add_result(values);
    opt.run_callback();
  } catch (const CLI::Error& e) {
    return e.what();
  }
  return "";
}

// One layer's value for an option (the environment's, or the file's): the
// values to hand to CLI11, or why the layer's value cannot be used.
struct LayerValue {
  std::vector<std::string> values;
  std::string error;  // set: the value cannot be used
};
// nullopt: the layer says nothing about the option.
using LayerLookup =
    std::function<std::optional<LayerValue>(const CLI::Option&)>;

// Which layer set each option of one command, and where its value came
// from; applies the layers below the command line in order.
class Layers {
 public:
  explicit Layers(CLI::App& cmd) : options_(SettableOptions(cmd)) {
    for (CLI::Option* opt : options_) {
      if (opt->count() > 0) {
        layer_of_[opt] = 0;
        sources_[LongName(*opt)] = "flag";
      }
    }
  }

  // Sets the options still unset from `lookup`, the layer numbered `layer`
  // (0 is the command line). `source` names an option's value in this layer,
  // for errors and SettingSources ("env CRUNCHER_X").
  Status Apply(int layer, const LayerLookup& lookup,
               const std::function<std::string(const CLI::Option&)>& source) {
    // First what the layer holds, then the exclusions among it, then the
    // values: which of two exclusive flags wins must not depend on the
    // order of the options.
    std::vector<std::pair<CLI::Option*, LayerValue>> given;
    for (CLI::Option* opt : options_) {
      if (opt->count() > 0) continue;
      auto value = lookup(*opt);
      if (!value) continue;
      if (!value->error.empty()) {
        return InvalidArgument(source(*opt) + ": " + value->error);
      }
      given.emplace_back(opt, std::move(*value));
    }
    std::set<const CLI::Option*> in_layer;
    for (const auto& [opt, value] : given) in_layer.insert(opt);
    for (auto& [opt, value] : given) {
      bool overridden = false;
      for (const CLI::Option* other : opt->get_excludes()) {
        if (in_layer.count(other) > 0) {
          return InvalidArgument(source(*opt) + " and " + source(*other) +
                                 " exclude each other: give one");
        }
        // A higher layer set the other one: it wins over this one.
        if (layer_of_.count(other) > 0) overridden = true;
      }
      if (overridden) continue;
      std::string error = SetOption(*opt, value.values);
      if (!error.empty()) return InvalidArgument(source(*opt) + ": " + error);
      layer_of_[opt] = layer;
      sources_[LongName(*opt)] = source(*opt);
    }
    return Status::Ok();
  }

  // Records where a value that is no layer's option came from (--config).
  void Note(const std::string& name, std::string source) {
    sources_[name] = std::move(source);
  }
  SettingSources sources() && { return std::move(sources_); }

 private:
  std::vector<CLI::Option*> options_;
  std::map<const CLI::Option*, int> layer_of_;
  SettingSources sources_;
};

std::optional<LayerValue> EnvValue(const CLI::Option& opt, const EnvVars& env) {
  auto found = env.find(EnvNameFor(LongName(opt)));
  if (found == env.end() || found->second.empty()) return std::nullopt;
  const std::string& text = found->second;
  if (!IsFlag(opt)) return LayerValue{{text}, ""};
  try {
    bool on = CLI::detail::to_flag_value(text) > 0;
    return LayerValue{
        {opt.get_flag_value(LongName(opt), on ? "true" : "false")}, ""};
  } catch (const std::exception&) {
    return LayerValue{{}, "expected true or false, got \"" + text + "\""};
  }
}

std::optional<LayerValue> FileValue(
    const CLI::Option& opt, const std::map<std::string, ConfigEntry>& entries) {
  auto found = entries.find(LongName(opt));
  if (found == entries.end()) return std::nullopt;
  const ConfigEntry& e = found->second;
  if (IsFlag(opt)) {
    std::optional<bool> on;
    if (!e.list && e.plain) on = YamlBool(e.values.front());
    if (!on) {
      return LayerValue{{}, "expected true or false (a flag without a value)"};
    }
    return LayerValue{
        {opt.get_flag_value(LongName(opt), *on ? "true" : "false")}, ""};
  }
  if (e.list && opt.get_items_expected_max() <= 1) {
    return LayerValue{{}, "takes one value, not a list"};
  }
  return LayerValue{e.values, ""};
}

// A number for flags CLI11 types as INT, UINT or FLOAT; nullopt otherwise.
std::optional<json> AsNumber(const CLI::Option& opt, const std::string& text) {
  std::string type = opt.get_type_name();
  bool integer = type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0;
  bool real = type.rfind("FLOAT", 0) == 0;
  if (text.empty() || (!integer && !real)) return std::nullopt;
  const char* end = text.data() + text.size();
  if (integer) {
    long long n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), end, n);
    if (ec == std::errc() && ptr == end) return json(n);
    return std::nullopt;
  }
  char* parsed_end = nullptr;
  double d = std::strtod(text.c_str(), &parsed_end);
  if (parsed_end == end) return json(d);
  return std::nullopt;
}

std::string Lower(std::string_view s) {
  std::string out;
  for (char c : s) {
    out.push_back(
        static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

// `text` with the userinfo of a URL in it and the values of its query
// parameters with secret names redacted; other text as it is.
std::string RedactUrl(const std::string& text) {
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos || scheme_end == 0) return text;
  for (size_t i = 0; i < scheme_end; ++i) {
    char c = text[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' &&
        c != '.') {
      return text;
    }
  }
  size_t authority = scheme_end + 3;
  size_t authority_end = text.find_first_of("/?#", authority);
  if (authority_end == std::string::npos) authority_end = text.size();
  std::string out = text.substr(0, authority);
  size_t at = text.rfind('@', authority_end == 0 ? 0 : authority_end - 1);
  if (at != std::string::npos && at >= authority) {
    out += kRedacted;
    out += text.substr(at, authority_end - at);
  } else {
    out += text.substr(authority, authority_end - authority);
  }
  size_t query = text.find('?', authority_end);
  size_t fragment = text.find('#', authority_end);
  if (query == std::string::npos ||
      (fragment != std::string::npos && fragment < query)) {
    return out + text.substr(authority_end);
  }
  out += text.substr(authority_end, query + 1 - authority_end);
  size_t query_end = fragment == std::string::npos ? text.size() : fragment;
  size_t start = query + 1;
  while (start <= query_end) {
    size_t amp = text.find('&', start);
    if (amp == std::string::npos || amp > query_end) amp = query_end;
    std::string param = text.substr(start, amp - start);
    size_t eq = param.find('=');
    if (eq != std::string::npos && IsSecretName(param.substr(0, eq))) {
      param = param.substr(0, eq + 1) + kRedacted;
    }
    out += param;
    if (amp < query_end) out += "&";
    start = amp + 1;
  }
  return out + text.substr(query_end);
}

}  // namespace

Result<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path) {
  auto fail = [&](const std::string& why) {
    return InvalidArgument("config file " + path + ": " + why);
  };
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return fail("no such file");
  }
  if (!std::filesystem::is_regular_file(status)) {
    return fail("not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot open it for reading");
  // One byte past the cap tells a file at the cap from a larger one.
  std::string text(kMaxConfigFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return fail("read error");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFileBytes) {
    return fail("larger than " + std::to_string(kMaxConfigFileBytes) +
                " bytes; settings fit in a few lines");
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return fail(std::string("not valid YAML: ") + e.what());
  }
  std::vector<ConfigEntry> entries;
  if (root.IsNull()) return entries;  // empty, or only comments
  if (!root.IsMap()) {
    return fail(
        "must be a mapping of flag names to values, e.g. "
        "\"queue-url: https://...\"");
  }
  std::set<std::string> seen;
  for (const auto& kv : root) {
    ConfigEntry e;
    e.line = kv.first.Mark().line + 1;
    auto at = [&](const std::string& why) {
      return fail("line " + std::to_string(e.line) + ": " +
                  (e.key.empty() ? "" : "\"" + e.key + "\" ") + why);
    };
    if (!kv.first.IsScalar()) return at("a key must be a flag name");
    e.key = kv.first.Scalar();
    if (!seen.insert(e.key).second) return at("is given twice");
    const YAML::Node& value = kv.second;
    switch (value.Type()) {
      case YAML::NodeType::Scalar:
        e.values.push_back(value.Scalar());
        // yaml-cpp tags untagged plain scalars "?", quoted ones "!".
        e.plain = value.Tag() == "?";
        break;
      case YAML::NodeType::Sequence:
        e.list = true;
        for (const auto& item : value) {
          if (!item.IsScalar()) {
            return at("must list single values (no null, list or mapping)");
          }
          e.values.push_back(item.Scalar());
        }
        break;
      case YAML::NodeType::Map:
        return at("must be a value or a list of values, not a mapping");
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return at("has no value (null): give one, or remove the key");
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::string EnvNameFor(std::string_view long_flag) {
  std::string name = "CRUNCHER_";
  for (char c : long_flag) {
    name.push_back(c == '-' ? '_'
                            : static_cast<char>(
                                  std::toupper(static_cast<unsigned char>(c))));
  }
  return name;
}

Result<SettingSources> ApplySettings(CLI::App& cmd, const EnvVars& env) {
  Layers layers(cmd);
  Status from_env = layers.Apply(
      1, [&](const CLI::Option& opt) { return EnvValue(opt, env); },
      [](const CLI::Option& opt) {
        return "env " + EnvNameFor(LongName(opt));
      });
  if (!from_env.ok()) return from_env;

  CLI::Option* config = cmd.get_option_no_throw("--config");
  std::string path;
  if (config != nullptr && config->count() > 0) {
    path = config->results().back();
    layers.Note("config", "flag");
  } else if (auto found = env.find("CRUNCHER_CONFIG"); config != nullptr &&
                                                       found != env.end() &&
                                                       !found->second.empty()) {
    path = found->second;
    config->add_result(path);
    config->run_callback();
    layers.Note("config", "env CRUNCHER_CONFIG");
  }
  if (path.empty()) return std::move(layers).sources();

  CRUNCHER_ASSIGN_OR_RETURN(std::vector<ConfigEntry> entries,
                            ReadConfigFile(path));
  std::set<std::string> known;
  const CLI::App* root = &cmd;
  while (root->get_parent() != nullptr) root = root->get_parent();
  CollectLongNames(*root, known);
  std::map<std::string, ConfigEntry> by_key;
  for (ConfigEntry& e : entries) {
    const CLI::Option* opt = cmd.get_option_no_throw("--" + e.key);
    std::string where = "config file " + path + " line " +
                        std::to_string(e.line) + ": \"" + e.key + "\" ";
    if (opt != nullptr && !opt->get_configurable()) {
      return InvalidArgument(where + "cannot be set in a config file");
    }
    if (opt == nullptr || LongName(*opt) != e.key) {
      if (known.count(e.key) > 0) continue;  // another command's flag
      return InvalidArgument(where +
                             "is not a flag of any cruncher command "
                             "(keys are long flags without the dashes, e.g. "
                             "queue-url)");
    }
    std::string key = e.key;
    by_key.emplace(std::move(key), std::move(e));
  }
  Status from_file = layers.Apply(
      2, [&](const CLI::Option& opt) { return FileValue(opt, by_key); },
      [&](const CLI::Option& opt) {
        return "config file " + path + " line " +
               std::to_string(by_key.at(LongName(opt)).line) + ": \"" +
               LongName(opt) + "\"";
      });
  if (!from_file.ok()) return from_file;
  SettingSources sources = std::move(layers).sources();
  // Errors name the line; the start-up line names the file.
  for (auto& [name, source] : sources) {
    if (source.rfind("config file ", 0) == 0) source = "file " + path;
  }
  return sources;
}

json EffectiveSettings(const CLI::App& cmd) {
  json out = json::object();
  for (const CLI::Option* opt : cmd.get_options()) {
    const std::string name = LongName(*opt);
    if (name.empty() || opt == cmd.get_help_ptr() ||
        opt == cmd.get_help_all_ptr()) {
      continue;
    }
    if (IsFlag(*opt)) {
      if (opt->count() == 0 || opt->results().empty()) {
        out[name] = false;
      } else {
        out[name] = opt->results().back() == opt->get_flag_value(name, "true");
      }
      continue;
    }
    std::vector<std::string> values = opt->results();
    if (values.empty() && !opt->get_default_str().empty()) {
      values.push_back(opt->get_default_str());
    }
    if (values.empty()) {
      out[name] = nullptr;
      continue;
    }
    json items = json::array();
    for (const std::string& v : values) {
      items.push_back(AsNumber(*opt, v).value_or(json(v)));
    }
    out[name] = opt->get_items_expected_max() <= 1 ? items.back() : items;
  }
  return out;
}

bool IsSecretName(std::string_view name) {
  std::string squashed;
  for (char c : Lower(name)) {
    if (c != '-' && c != '_' && c != '.' && c != ' ') squashed.push_back(c);
  }
  for (const char* word : {"token", "secret", "password", "passwd",
                           "credential", "apikey", "privatekey"}) {
    if (squashed.find(word) != std::string::npos) return true;
  }
  return false;
}

json RedactSecrets(const json& settings) {
  if (settings.is_string()) return RedactUrl(settings.get<std::string>());
  if (settings.is_array()) {
    json out = json::array();
    for (const json& item : settings) out.push_back(RedactSecrets(item));
    return out;
  }
  if (!settings.is_object()) return settings;
  json out = json::object();
  for (const auto& [key, value] : settings.items()) {
    bool hide = IsSecretName(key) && !value.is_null() && !value.is_boolean() &&
                !(value.is_string() && value.get<std::string>().empty());
    out[key] = hide ? json(kRedacted) : RedactSecrets(value);
  }
  return out;
}

}  // namespace cruncher::cli
