// cruncher: the controller and the operator's CLI (DESIGN.md §8).
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"

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
