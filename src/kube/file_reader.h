// Reading the small files a Kubernetes client depends on (kubeconfigs,
// certificates, token files) with a size bound, so a path that names a huge
// file or a device cannot exhaust memory.
//
// Thread-safety: pure functions over the file system.
#ifndef CRUNCHER_KUBE_FILE_READER_H_
#define CRUNCHER_KUBE_FILE_READER_H_

#include <cstddef>
#include <string>

#include "core/status.h"

namespace cruncher::kube {

// Returns the file's bytes. Fails with NotFound if it does not exist,
// InvalidArgument if it is larger than `max_bytes`, is a directory or cannot
// be read; the message names the path and the reason.
Result<std::string> ReadFileBounded(const std::string& path,
                                    std::size_t max_bytes);

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_FILE_READER_H_
