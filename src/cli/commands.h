// The subcommands of `cruncher`, one file each; main.cc registers them all.
#ifndef CRUNCHER_CLI_COMMANDS_H_
#define CRUNCHER_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace cruncher::cli {

void RegisterDemo(CLI::App& app);
void RegisterLocal(CLI::App& app);  // local serve
void RegisterWatch(CLI::App& app);
void RegisterSend(CLI::App& app);
void RegisterStatus(CLI::App& app);
void RegisterJobs(CLI::App& app);
void RegisterLogs(CLI::App& app);
void RegisterRequeue(CLI::App& app);
void RegisterGc(CLI::App& app);
void RegisterDlq(CLI::App& app);

}  // namespace cruncher::cli

#endif  // CRUNCHER_CLI_COMMANDS_H_
