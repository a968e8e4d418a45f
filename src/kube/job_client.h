// JobClient: the batch/v1 Jobs API of one namespace, typed.
//
// Create, get, delete (background propagation: the garbage collector removes
// the pods), list by label selector across pages (limit/continue; an expired
// continue token restarts the list, as client-go's pager does) and watch
// from a resourceVersion with bookmarks. Errors are RestClient's: the API's
// reason and message, NotFound for 404 and for 410 Gone (`ApiError` tells
// them apart).
//
// Thread-safety: safe for concurrent use.
#ifndef CRUNCHER_KUBE_JOB_CLIENT_H_
#define CRUNCHER_KUBE_JOB_CLIENT_H_

#include <functional>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <vector>

#include "core/job.h"
#include "core/status.h"
#include "kube/rest_client.h"

namespace cruncher::kube {

// What a list returns: the Jobs and the resourceVersion to watch from.
struct JobList {
  std::vector<Job> jobs;
  std::string resource_version;
};

// One event of a watch. For ADDED/MODIFIED/DELETED `object` is the Job; for
// BOOKMARK only its metadata.resourceVersion is meaningful; ERROR carries a
// Status object and ends the watch.
struct WatchEvent {
  std::string type;
  nlohmann::json object;
};

class JobClient {
 public:
  JobClient(RestClient& rest, std::string namespace_name);

  const std::string& namespace_name() const { return namespace_; }

  // POSTs the manifest (its metadata.namespace is set to ours). Returns the
  // Job as the server stored it. AlreadyExists on 409 AlreadyExists;
  // InvalidArgument when the server rejects the object (400/422).
  // `timeout_ms` bounds the exchange (0: the client's request timeout).
  Result<Job> Create(nlohmann::json manifest, const std::stop_token& stop = {},
                     long timeout_ms = 0);
  // The same POST with dryRun=All: the server validates and admits the Job
  // but stores nothing. `error` gets the Status's reason and fields. Ends
  // after kDryRunTimeoutMs.
  static constexpr long kDryRunTimeoutMs = 10'000;
  Status CreateDryRun(nlohmann::json manifest, const std::stop_token& stop,
                      ApiError* error);

  // Get and Delete refuse a name that is not a valid object name (it would
  // be pasted into the URL path: "../../other/jobs/x") with InvalidArgument
  // (CheckJobName), before any request.
  Result<Job> Get(const std::string& name, const std::stop_token& stop = {},
                  long timeout_ms = 0);

  // Deletes with propagationPolicy=Background. NotFound if absent.
  Status Delete(const std::string& name, const std::stop_token& stop = {});

  // Every Job matching `label_selector`, `page_size` per request.
  Result<JobList> List(const std::string& label_selector, int page_size = 500,
                       const std::stop_token& stop = {});

  // List, handing each Job to `each` as soon as its page is parsed, so a
  // list of 10,000 Jobs is never whole in memory; returns the list's
  // resourceVersion. An expired continue token is NotFound with
  // `error->http_status` 410 (Jobs already handed over are then stale:
  // list again), and is not retried here. A page that is not a JobList, or
  // a continue token answered with the same token (a list that would never
  // end), is Unavailable; items that are not Jobs are skipped and logged
  // (job_list_items_skipped, with their count).
  Result<std::string> ListEach(const std::string& label_selector, int page_size,
                               const std::function<void(Job job)>& each,
                               const std::stop_token& stop = {},
                               ApiError* error = nullptr);

  // Watches from `resource_version` with bookmarks, handing each event to
  // `on_event` (on the transport's I/O thread: be quick; return false to
  // close). The server ends the watch after `timeout_seconds`. Returns OK
  // when the watch ended normally; NotFound with `error->http_status` 410
  // when the resourceVersion is too old (at open, or as an ERROR event):
  // list again. A line that is not JSON, or an event that cannot be
  // decoded (not an object, a wrong-typed or unknown `type`, an `object`
  // that is not a Job with a name), ends the watch as Unavailable quoting
  // an excerpt: list again, as client-go does.
  Status Watch(const std::string& label_selector,
               const std::string& resource_version, int timeout_seconds,
               const std::function<bool(WatchEvent event)>& on_event,
               const std::stop_token& stop = {}, ApiError* error = nullptr);

 private:
  std::string CollectionPath() const;
  // Sets metadata.namespace to ours; InvalidArgument for a manifest that is
  // not an object or has no metadata object.
  Status PlaceInNamespace(nlohmann::json& manifest) const;

  RestClient& rest_;
  const std::string namespace_;
};

// The object's metadata.<key> if it is a string, else "": names, uids and
// resourceVersions of objects from the server, read without trusting their
// shape.
std::string MetadataString(const nlohmann::json& object, const char* key);

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_JOB_CLIENT_H_
