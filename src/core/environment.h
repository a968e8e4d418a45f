// The process environment as a value, so that code reading configuration
// from it (the AWS credential chain, kubeconfig and in-cluster discovery)
// takes it as an argument and tests pass their own.
//
// Thread-safety: ProcessEnvironment reads `environ`; call it before threads
// that could setenv (Cruncher never does).
#ifndef CRUNCHER_CORE_ENVIRONMENT_H_
#define CRUNCHER_CORE_ENVIRONMENT_H_

#include <map>
#include <string>

namespace cruncher {

using EnvVars = std::map<std::string, std::string>;

// A snapshot of this process's environment.
EnvVars ProcessEnvironment();

}  // namespace cruncher

#endif  // CRUNCHER_CORE_ENVIRONMENT_H_
