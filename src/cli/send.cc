// cruncher send BODY... | --file F: enqueue tasks.
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/queue_backend.h"
#include "core/task.h"

namespace cruncher::cli {
namespace {

struct SendOptions {
  BackendOptions backend;
  std::vector<std::string> bodies;
  std::string file;
  std::optional<int> delay_seconds;  // unset: the queue's default
};

struct Body {
  std::string text;
  std::string where;  // "argument 2", "line 17"
};

// Every body must be a JSON object of at most 1 MiB: all are checked before
// anything is sent, so a bad line never leaves a half-sent file behind.
Status Validate(const std::vector<Body>& bodies) {
  std::string errors;
  int bad = 0;
  for (const auto& b : bodies) {
    Status s =
        b.text.size() > local::kMaxMessageBytes
            ? InvalidArgument("body of " + std::to_string(b.text.size()) +
                              " bytes exceeds the 1 MiB message limit")
            : TaskVariables::FromBody(b.text).status();
    if (s.ok()) continue;
    if (++bad <= 10) errors += "\n  " + b.where + ": " + s.message();
  }
  if (bad == 0) return Status::Ok();
  if (bad > 10) errors += "\n  ... and " + std::to_string(bad - 10) + " more";
  return InvalidArgument(std::to_string(bad) + " invalid task" +
                         (bad == 1 ? "" : "s") + ", nothing sent:" + errors);
}

Result<std::vector<Body>> ReadBodies(const SendOptions& o) {
  std::vector<Body> bodies;
  for (size_t i = 0; i < o.bodies.size(); ++i) {
    bodies.push_back({o.bodies[i], "argument " + std::to_string(i + 1)});
  }
  if (o.file.empty()) return bodies;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (o.file != "-") {
    file.open(o.file);
    if (!file) return NotFound("cannot read " + o.file);
    in = &file;
  }
  std::string line;
  for (int n = 1; std::getline(*in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    bodies.push_back({line, "line " + std::to_string(n)});
  }
  return bodies;
}

// "--name" or "-x": what CLI11 leaves over from an option it does not know.
// A body never looks like this ("-1" is a body, refused as not an object).
bool LooksLikeOption(const std::string& arg) {
  return arg.size() >= 2 && arg[0] == '-' &&
         (arg[1] == '-' || std::isalpha(static_cast<unsigned char>(arg[1])));
}

void DrawProgress(size_t done, size_t total) {
  constexpr int kWidth = 40;
  int filled = total ? static_cast<int>(kWidth * done / total) : kWidth;
  std::cerr << "\r[" << std::string(filled, '#')
            << std::string(kWidth - filled, ' ') << "] " << done << "/" << total
            << std::flush;
}

int Run(const SendOptions& o) {
  if (o.bodies.empty() && o.file.empty()) {
    std::cerr << "error: give task bodies as arguments or --file FILE\n";
    return kExitUsage;
  }
  auto bodies = ReadBodies(o);
  if (!bodies.ok()) return Fail(bodies.status());
  if (Status s = Validate(*bodies); !s.ok()) return Fail(s);
  auto backend = OpenQueueBackend(o.backend);
  if (!backend.ok()) return Fail(backend.status());
  bool progress = !o.file.empty() && ::isatty(2);
  // Chunks of 100: one transaction locally (far fewer disk syncs than one
  // per message), ten batch requests on SQS; and a progress bar that moves.
  constexpr size_t kChunk = 100;
  size_t sent = 0;
  std::vector<std::string> ids;
  for (size_t start = 0; start < bodies->size(); start += kChunk) {
    std::vector<OutgoingMessage> chunk;
    for (size_t i = start; i < std::min(bodies->size(), start + kChunk); ++i) {
      chunk.push_back({(*bodies)[i].text, {}, o.delay_seconds});
    }
    auto r = (*backend)->SendAll(chunk);
    if (!r.ok()) {
      if (progress) std::cerr << "\n";
      return Fail(
          r.status().WithContext("after " + std::to_string(sent) + " sent"),
          "the first " + std::to_string(sent) +
              " tasks are queued; send the rest again");
    }
    sent += r->size();
    if (o.file.empty()) ids.insert(ids.end(), r->begin(), r->end());
    if (progress) DrawProgress(sent, bodies->size());
  }
  if (progress) std::cerr << "\n";
  for (const auto& id : ids) std::cout << id << "\n";
  if (!o.file.empty()) {
    std::cout << "sent " << sent << " task" << (sent == 1 ? "" : "s")
              << " to queue " << (*backend)->queue_name() << "\n";
  }
  return kExitOk;
}

}  // namespace

void RegisterSend(CLI::App& app) {
  auto o = std::make_shared<SendOptions>();
  auto* cmd = app.add_subcommand(
      "send",
      "Enqueue tasks: JSON object bodies as arguments, or --file with "
      "one JSON object per line (JSON Lines; - for stdin)");
  AddBackendOptions(cmd, o->backend);
  // The bodies are the arguments no option took, one body each, verbatim:
  // a CLI11 positional that takes several values would read "[1,2]" as a
  // list and split it into the bodies 1 and 2.
  cmd->allow_extras();
  cmd->footer("BODY...: task bodies, one JSON object per argument");
  cmd->add_option("-f,--file", o->file, "JSON Lines file of task bodies");
  cmd->add_option("--delay-seconds", o->delay_seconds,
                  "Keep the messages invisible this long (0-900)")
      ->check(CLI::Range(0, 900));
  SetCommand(cmd, [o, cmd] {
    for (const std::string& arg : cmd->remaining()) {
      if (LooksLikeOption(arg)) {
        std::cerr << "error: send: unknown option " << arg
                  << "\nRun with --help for usage.\n";
        return kExitUsage;
      }
      o->bodies.push_back(arg);
    }
    return Run(*o);
  });
}

}  // namespace cruncher::cli
