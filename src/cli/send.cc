// cruncher send BODY... | --file F: enqueue tasks.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>

#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/task.h"

namespace cruncher::cli {
namespace {

struct SendOptions {
  app::BackendOptions backend;
  std::vector<std::string> bodies;
  std::string file;
  std::optional<int> delay_seconds;  // unset: the queue's default
};

struct Body {
  std::string text;
  const char* kind;  // "argument" or "line"
  int number;        // 1-based
  std::string where() const { return kind + (" " + std::to_string(number)); }
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
    if (++bad <= 10) errors += "\n  " + b.where() + ": " + s.message();
  }
  if (bad == 0) return Status::Ok();
  if (bad > 10) errors += "\n  ... and " + std::to_string(bad - 10) + " more";
  return InvalidArgument(std::to_string(bad) + " invalid task" +
                         (bad == 1 ? "" : "s") + ", nothing sent:" + errors);
}

Result<std::vector<Body>> ReadBodies(const SendOptions& o) {
  std::vector<Body> bodies;
  for (size_t i = 0; i < o.bodies.size(); ++i) {
    bodies.push_back({o.bodies[i], "argument", static_cast<int>(i + 1)});
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
    bodies.push_back({line, "line", n});
  }
  // A directory opens, then fails its first read: not "0 tasks sent".
  if (in->bad() || (!in->eof() && in->fail())) {
    return Unavailable("cannot read " + o.file + ": read error (a directory?)");
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

// "lines 3, 11-20, 40" or "argument 2": runs of consecutive numbers as
// ranges (a skipped blank line breaks a run: the list stays exact).
std::string DescribeBodies(const std::vector<const Body*>& bodies) {
  std::string out;
  for (size_t i = 0; i < bodies.size();) {
    size_t end = i + 1;
    while (end < bodies.size() && bodies[end]->kind == bodies[i]->kind &&
           bodies[end]->number == bodies[end - 1]->number + 1) {
      ++end;
    }
    bool kind_changes = i == 0 || bodies[i - 1]->kind != bodies[i]->kind;
    if (!out.empty()) out += kind_changes ? "; " : ", ";
    if (kind_changes) {
      bool plural =
          end - i > 1 ||
          std::any_of(bodies.begin() + end, bodies.end(), [&](const Body* b) {
            return b->kind == bodies[i]->kind;
          });
      out += std::string(bodies[i]->kind) + (plural ? "s " : " ");
    }
    out += std::to_string(bodies[i]->number);
    if (end - i > 1) out += "-" + std::to_string(bodies[end - 1]->number);
    i = end;
  }
  return out;
}

// Says which bodies were not sent, grouped by reason, and that the others
// are queued: sending exactly the listed ones again duplicates nothing.
int ReportNotSent(const std::vector<Body>& bodies,
                  const std::vector<Status>& outcomes) {
  std::vector<std::pair<std::string, std::vector<const Body*>>> by_reason;
  size_t not_sent = 0;
  for (size_t i = 0; i < bodies.size(); ++i) {
    if (outcomes[i].ok()) continue;
    ++not_sent;
    const std::string& reason = outcomes[i].message();
    auto group = std::find_if(by_reason.begin(), by_reason.end(),
                              [&](const auto& g) { return g.first == reason; });
    if (group == by_reason.end()) {
      group = by_reason.insert(by_reason.end(), {reason, {}});
    }
    group->second.push_back(&bodies[i]);
  }
  std::string message = std::to_string(not_sent) + " of " +
                        std::to_string(bodies.size()) + " task" +
                        (bodies.size() == 1 ? "" : "s") + " not sent:";
  for (const auto& [reason, group] : by_reason) {
    message += "\n  " + DescribeBodies(group) + ": " + reason;
  }
  return Fail(message, "every other task is queued once; send only the " +
                           std::string(not_sent == 1 ? "one" : "ones") +
                           " listed again");
}

int Run(const SendOptions& o) {
  if (o.bodies.empty() && o.file.empty()) {
    std::cerr << "error: give task bodies as arguments or --file FILE\n";
    return kExitUsage;
  }
  auto bodies = ReadBodies(o);
  if (!bodies.ok()) return Fail(bodies.status());
  if (Status s = Validate(*bodies); !s.ok()) return Fail(s);
  auto backend = app::OpenQueueBackend(o.backend);
  if (!backend.ok()) return Fail(backend.status());
  bool progress = !o.file.empty() && ::isatty(2);
  // Chunks of 100: one transaction locally (far fewer disk syncs than one
  // per message), ten batch requests on SQS; and a progress bar that moves.
  constexpr size_t kChunk = 100;
  size_t sent = 0;
  std::vector<std::string> ids;
  // One outcome per body: a failed batch fails only its own messages.
  std::vector<Status> outcomes(bodies->size());
  for (size_t start = 0; start < bodies->size(); start += kChunk) {
    const size_t end = std::min(bodies->size(), start + kChunk);
    std::vector<OutgoingMessage> chunk;
    for (size_t i = start; i < end; ++i) {
      chunk.push_back({(*bodies)[i].text, {}, o.delay_seconds});
    }
    auto results = (*backend)->SendAll(chunk);
    size_t chunk_sent = 0;
    for (size_t i = start; i < end; ++i) {
      auto& r = results[i - start];
      outcomes[i] = std::move(r.status);
      if (!outcomes[i].ok()) continue;
      ++chunk_sent;
      if (o.file.empty()) ids.push_back(std::move(r.message_id));
    }
    sent += chunk_sent;
    if (progress) DrawProgress(end, bodies->size());
    if (chunk_sent == 0 && end < bodies->size()) {
      // Not one message of the chunk got through: the queue is unreachable
      // or refuses everything. Do not retry it with the rest of the file.
      for (size_t i = end; i < bodies->size(); ++i) {
        outcomes[i] =
            Unavailable("not tried: every message of the batch before failed");
      }
      break;
    }
  }
  if (progress) std::cerr << "\n";
  for (const auto& id : ids) std::cout << id << "\n";
  if (!o.file.empty()) {
    std::cout << "sent " << sent << " task" << (sent == 1 ? "" : "s")
              << " to queue " << (*backend)->queue_name() << "\n";
  }
  if (sent < bodies->size()) return ReportNotSent(*bodies, outcomes);
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
