// JobTemplate: a Job manifest with $name / ${name} placeholders.
//
// The manifest (YAML or JSON, like the seed's job.yaml) is parsed once into a
// JSON tree. Rendering substitutes placeholders inside string scalars of that
// tree only, never in raw text, so no variable value can change the
// manifest's structure. Rules:
//   - `$name` and `${name}` are replaced by the variable's text (task.h);
//     `$$` is a literal `$`; a `$` not followed by a name or `{` stays as is,
//     so Kubernetes' own `$(VAR)` references survive.
//   - Values arrive verbatim. The kubelet expands `$(VAR)` and turns `$$`
//     into `$` in a container's `command`, `args`, `env[].value` and
//     `volumeMounts[].subPathExpr` (containers and initContainers; the local
//     executor does the same). In those fields a value's every `$` is
//     written `$$`, and the template's own `$$` is kept for the kubelet to
//     reduce, so the process sees exactly the message's value and the
//     template's literal `$` alike, and a value can never form a `$(VAR)`
//     reference (`"$(API_TOKEN)"` arrives as that text, not as the secret).
//     Only a placeholder the template itself puts inside an unclosed
//     `$(`...`)` is read by the kubelet as part of a variable name.
//   - A placeholder whose variable is not in the message is an error for
//     that message (InvalidArgument naming the variable), and so is a value
//     holding a NUL character: no process argument or environment variable
//     can carry one, so it would arrive cut short.
//   - An unquoted YAML scalar that is exactly one placeholder takes the JSON
//     type of a number or boolean value (`activeDeadlineSeconds: $deadline`
//     with {"deadline": 60} renders 60); every other substitution is a string.
//   - Mapping keys are not substituted, and a placeholder in a key is an
//     error at Parse: label and annotation keys are the template's, never a
//     message's (a value chosen key could collide with the template's own).
//   - A plain number a double cannot hold (1e999, 1e-310) is an error at
//     Parse; quote it to keep it as text.
//
// Thread-safety: immutable after construction; Render is const.
#ifndef CRUNCHER_CORE_TEMPLATE_H_
#define CRUNCHER_CORE_TEMPLATE_H_

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "core/message_queue.h"
#include "core/status.h"
#include "core/task.h"

namespace cruncher {

class JobTemplate {
 public:
  // Parses a manifest. InvalidArgument (naming `source`) if it is not valid
  // YAML/JSON, holds more than one document, is not a mapping, not
  // `kind: Job`, has no container, a placeholder in a mapping key or a
  // number out of a double's range.
  static Result<JobTemplate> Parse(std::string_view text,
                                   std::string_view source);
  // Reads and parses a file; NotFound if it cannot be read.
  static Result<JobTemplate> Load(const std::string& path);

  // Substitutes the variables into a copy of the manifest.
  Result<nlohmann::json> Render(const TaskVariables& vars) const;

  // Renders the Job for one message of `queue`: the substituted manifest with
  // its deterministic name, Cruncher's labels, and the annotations `task`
  // (the body, verbatim), message id, queue and receive count.
  Result<nlohmann::json> RenderForMessage(const Message& message,
                                          std::string_view queue) const;

  // The manifest as the API server would get it for a message, without
  // one: for a server-side dry run of the template at start-up. Strings
  // keep their placeholders as text; a lone unquoted placeholder (which
  // takes a number's type) becomes 1 with `numbers`, else stays text;
  // metadata.name is the prefix + ten zeros.
  nlohmann::json SampleManifest(bool numbers) const;
  // Whether any lone unquoted placeholder exists (see SampleManifest).
  bool has_typed_placeholders() const { return !typed_slots_.empty(); }
  // Whether the API server's field path ("spec.template.spec.containers[0]
  // .name", as in a 422's details.causes) holds, or contains, a string with
  // a placeholder: a field the message fills, whose error in the sample
  // says nothing of the template. False for a field the template lacks.
  bool FilledByMessage(std::string_view field_path) const;

  // The name prefix: metadata.generateName, else metadata.name + "-".
  const std::string& name_prefix() const { return name_prefix_; }
  const nlohmann::json& manifest() const { return manifest_; }

 private:
  nlohmann::json manifest_;
  std::set<std::string> typed_slots_;  // JSON pointers of lone placeholders
  // JSON pointers of the strings the kubelet expands (FieldExpansion).
  std::set<std::string> kubelet_expanded_;
  std::string name_prefix_;
};

// What happens to a rendered string after Cruncher: kNone, nothing;
// kKubelet, the kubelet's `$(VAR)` / `$$` expansion (see above).
enum class FieldExpansion { kNone, kKubelet };

// Substitutes placeholders in one string (the rules above, always text),
// escaped for the expansion the field undergoes.
Result<std::string> SubstitutePlaceholders(
    std::string_view text, const TaskVariables& vars,
    FieldExpansion expansion = FieldExpansion::kNone);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_TEMPLATE_H_
