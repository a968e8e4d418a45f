// sigv4_sign: a test helper that signs requests with our SigV4 signer so a
// script can compare the result with botocore's signer.
//
// Reads JSON Lines from stdin, one request each:
//   {"method": "POST", "url": "...", "headers": [["Name", "value"], ...],
//    "body": "...", "service": "sqs", "region": "us-east-1",
//    "access_key": "...", "secret_key": "...", "token": "" ,
//    "timestamp_ms": 1700000000000}
// and writes one JSON line per request: {"authorization": "...",
// "canonical_request": "...", "headers": [[name, value], ...]} or
// {"error": "..."}. Exits 1 on unparsable input.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "aws/credentials.h"
#include "aws/sigv4.h"

int main() {
  using nlohmann::json;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json in = json::parse(line, nullptr, false);
    if (in.is_discarded()) {
      std::cerr << "sigv4_sign: input line is not JSON\n";
      return 1;
    }
    cruncher::net::HttpRequest request;
    request.method = in.value("method", "POST");
    request.url = in.value("url", "");
    request.body = in.value("body", "");
    for (const auto& h : in.value("headers", json::array())) {
      request.headers.emplace_back(h.at(0).get<std::string>(),
                                   h.at(1).get<std::string>());
    }
    cruncher::aws::AwsCredentials creds;
    creds.access_key_id = in.value("access_key", "");
    creds.secret_access_key = in.value("secret_key", "");
    creds.session_token = in.value("token", "");
    auto parts = cruncher::aws::SignV4(
        request, creds, in.value("service", ""), in.value("region", ""),
        in.value("timestamp_ms", static_cast<cruncher::Millis>(0)));
    json out;
    if (!parts.ok()) {
      out["error"] = parts.status().ToString();
    } else {
      out["authorization"] = parts->authorization;
      out["canonical_request"] = parts->canonical_request;
      out["headers"] = request.headers;
    }
    std::cout << out.dump() << "\n";
  }
  return 0;
}
