#include "core/environment.h"

#include <unistd.h>

#include <string_view>

namespace cruncher {

EnvVars ProcessEnvironment() {
  EnvVars env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)),
                std::string(entry.substr(eq + 1)));
  }
  return env;
}

}  // namespace cruncher
