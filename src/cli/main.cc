// cruncher: the controller and the operator's CLI (DESIGN.md §8).
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"

namespace {

// CLI11 reports a word that names no subcommand as "A subcommand is required"
// (the word itself becomes an unexpected extra). Walk the command groups the
// way the parser will and name the first word that is not one of theirs,
// with the choices. An option ends the walk: CLI11 reports those itself.
std::string UnknownSubcommand(const CLI::App& app, int argc, char** argv) {
  const CLI::App* group = &app;
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.empty() || word[0] == '-') return "";
    auto subcommands = group->get_subcommands({});
    if (subcommands.empty()) return "";
    const CLI::App* next = nullptr;
    std::string choices;
    for (const CLI::App* sub : subcommands) {
      if (sub->check_name(word)) next = sub;
      choices += (choices.empty() ? "" : ", ") + sub->get_name();
    }
    if (next == nullptr) {
      return "unknown command \"" + word + "\"" +
             (group == &app ? "" : " for \"" + group->get_name() + "\"") +
             "; commands: " + choices;
    }
    group = next;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cruncher: queue-to-batch on Kubernetes, or locally"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cruncher 0.1.0");
  cruncher::cli::RegisterDemo(app);
  cruncher::cli::RegisterLocal(app);
  cruncher::cli::RegisterWatch(app);
  cruncher::cli::RegisterSend(app);
  cruncher::cli::RegisterStatus(app);
  cruncher::cli::RegisterJobs(app);
  cruncher::cli::RegisterLogs(app);
  cruncher::cli::RegisterRequeue(app);
  cruncher::cli::RegisterGc(app);
  cruncher::cli::RegisterDlq(app);
  if (std::string unknown = UnknownSubcommand(app, argc, argv);
      !unknown.empty()) {
    std::cerr << "error: " << unknown << "\nRun with --help for usage.\n";
    return cruncher::cli::kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\nRun with --help for usage.\n";
    return cruncher::cli::kExitUsage;
  }
  return cruncher::cli::CommandExitStatus();
}
