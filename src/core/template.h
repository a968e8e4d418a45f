// JobTemplate: a Job manifest with $name / ${name} placeholders.
//
// The manifest (YAML or JSON, like the seed's job.yaml) is parsed once into a
// JSON tree. Rendering substitutes placeholders inside string scalars of that
// tree only, never in raw text, so no variable value can change the
// manifest's structure. Rules:
//   - `$name` and `${name}` are replaced by the variable's text (task.h);
//     `$$` is a literal `$`; a `$` not followed by a name or `{` stays as is,
//     so Kubernetes' own `$(VAR)` references survive.
//   - A placeholder whose variable is not in the message is an error for
//     that message (InvalidArgument naming the variable).
//   - An unquoted YAML scalar that is exactly one placeholder takes the JSON
//     type of a number or boolean value (`activeDeadlineSeconds: $deadline`
//     with {"deadline": 60} renders 60); every other substitution is a string.
//   - Mapping keys are not substituted.
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
  // YAML/JSON, not a mapping, not `kind: Job`, or has no container.
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

  // The name prefix: metadata.generateName, else metadata.name + "-".
  const std::string& name_prefix() const { return name_prefix_; }
  const nlohmann::json& manifest() const { return manifest_; }

 private:
  nlohmann::json manifest_;
  std::set<std::string> typed_slots_;  // JSON pointers of lone placeholders
  std::string name_prefix_;
};

// Substitutes placeholders in one string (the rules above, always text).
Result<std::string> SubstitutePlaceholders(std::string_view text,
                                           const TaskVariables& vars);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_TEMPLATE_H_
