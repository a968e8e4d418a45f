#!/usr/bin/env python3
"""Compares our SigV4 signer (the sigv4_sign helper) with botocore's.

Generates many requests with awkward paths, query strings, bodies, headers,
session tokens, regions and services; signs each with botocore.auth.SigV4Auth
at a fixed timestamp and with our helper; fails unless every Authorization
header (and X-Amz-Security-Token / X-Amz-Date) is identical.

Usage: sigv4_botocore_compare.py PATH_TO_sigv4_sign [--cases N] [--seed S]
"""
import argparse
import datetime
import json
import random
import subprocess
import sys
import unittest.mock
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials

ODD_TEXT = [
    "", "a", "hello world", "ünïcödé ✓", "emoji 🚀", "tab\there", "new\nline",
    "quote\"s 'and' \\back", "{\"json\": [1, 2, {\"k\": null}]}", "%41%zz",
    "+plus+", "a=b&c=d", "~tilde~", "*star*", "slash/and\\back", "😀" * 10,
    "x" * 3000, "\u0000nul", "<xml>&amp;</xml>", "ß∂ƒ©˙∆˚¬…",
]
PATH_SEGMENTS = ["", "123456789012", "my-queue", "a b", "ünï", "%2F", "..",
                 ".", "x+y", "~user", "a:b", "q@host", "(paren)", "semi;colon",
                 "star*", "comma,", "eq=", "dollar$", "excl!", "apos'"]
QUERY_KEYS = ["Action", "b", "a", "A", "x-amz-thing", "ünï", "emp ty", "k~",
              "a.b", "Z"]
SERVICES = ["sqs", "sts", "s3", "execute-api", "dynamodb", "lambda"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1",
           "us-gov-west-1", "me-central-1"]
HOSTS = ["sqs.us-east-1.amazonaws.com", "LOCALHOST:9324", "127.0.0.1:4566",
         "example.com:443", "example.com:80", "Sts.AmazonAWS.com", "[::1]:8080"]
HEADER_NAMES = ["Content-Type", "X-Amz-Target", "x-amz-meta-Thing",
                "User-Agent", "X-Custom", "Accept", "x-amzn-trace-id",
                "Content-Length", "Expect", "X-Amz-Content-Sha256"]
HEADER_VALUES = ["application/x-amz-json-1.0", "  padded  value  ",
                 "AmazonSQS.ReceiveMessage", "a\tb", "multi   space   inside",
                 "", "100-continue", "x" * 200, "semi;colon,comma"]


def random_case(rng, i):
    scheme = rng.choice(["http", "https"])
    host = rng.choice(HOSTS)
    segs = [rng.choice(PATH_SEGMENTS) for _ in range(rng.randint(0, 4))]
    path = ("/" + "/".join(segs)) if segs or rng.random() < 0.5 else ""
    if path and rng.random() < 0.2:
        path += "/"
    query = ""
    if rng.random() < 0.5:
        pairs = []
        for _ in range(rng.randint(1, 5)):
            key = urllib.parse.quote(rng.choice(QUERY_KEYS), safe="-_.~")
            if rng.random() < 0.15:
                pairs.append(key)  # key without '='
            else:
                value = urllib.parse.quote(rng.choice(ODD_TEXT)[:50],
                                           safe="-_.~")
                pairs.append(f"{key}={value}")
        query = "?" + "&".join(pairs)
    headers = {}
    for _ in range(rng.randint(0, 5)):
        headers[rng.choice(HEADER_NAMES)] = rng.choice(HEADER_VALUES)
    if rng.random() < 0.1:
        headers["Host"] = host.lower()
    token = ""
    if rng.random() < 0.5:
        token = "FQoGZXIvYXdzE" + "".join(
            rng.choice("abcdefABCDEF0123456789+/=") for _ in range(rng.randint(10, 300)))
    ts = datetime.datetime(2020, 1, 1) + datetime.timedelta(
        seconds=rng.randint(0, 10 * 365 * 86400))
    return {
        "method": rng.choice(["POST", "GET", "PUT", "DELETE", "post"]),
        "url": f"{scheme}://{host}{path}{query}",
        "headers": list(headers.items()),
        "body": rng.choice(ODD_TEXT) + (str(i) if rng.random() < 0.5 else ""),
        "service": rng.choice(SERVICES),
        "region": rng.choice(REGIONS),
        "access_key": "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOP234567") for _ in range(16)),
        "secret_key": "".join(rng.choice("abcdefghijKLMNOP0123456789/+") for _ in range(40)),
        "token": token,
        "timestamp": ts,
    }


def botocore_sign(case):
    request = botocore.awsrequest.AWSRequest(
        method=case["method"], url=case["url"], headers=dict(case["headers"]),
        data=case["body"].encode("utf-8"))
    creds = botocore.credentials.Credentials(
        case["access_key"], case["secret_key"], case["token"] or None)
    signer = botocore.auth.SigV4Auth(creds, case["service"], case["region"])
    seen = {}
    original = signer.canonical_request

    def recording_canonical_request(req):
        seen["canonical_request"] = original(req)
        return seen["canonical_request"]

    signer.canonical_request = recording_canonical_request
    with unittest.mock.patch.object(botocore.auth, "get_current_datetime",
                                    return_value=case["timestamp"]):
        signer.add_auth(request)
    return {
        "authorization": request.headers["Authorization"],
        "x-amz-date": request.headers["X-Amz-Date"],
        "x-amz-security-token": request.headers.get("X-Amz-Security-Token"),
        "canonical_request": seen["canonical_request"],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("signer")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = [random_case(rng, i) for i in range(args.cases)]
    lines = []
    for c in cases:
        ts_ms = int(c["timestamp"].replace(
            tzinfo=datetime.timezone.utc).timestamp() * 1000)
        lines.append(json.dumps({**{k: v for k, v in c.items() if k != "timestamp"},
                                 "timestamp_ms": ts_ms}))
    proc = subprocess.run([args.signer], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=True)
    ours = [json.loads(l) for l in proc.stdout.splitlines()]
    if len(ours) != len(cases):
        print(f"FAIL: {len(cases)} requests in, {len(ours)} signatures out")
        return 1
    failures = 0
    services, with_token = set(), 0
    for case, got in zip(cases, ours):
        want = botocore_sign(case)
        services.add(case["service"])
        with_token += bool(case["token"])
        got_headers = {k.lower(): v for k, v in got.get("headers", [])}
        problems = []
        if got.get("authorization") != want["authorization"]:
            problems.append(("Authorization", want["authorization"], got.get("authorization")))
        if got_headers.get("x-amz-date") != want["x-amz-date"]:
            problems.append(("X-Amz-Date", want["x-amz-date"], got_headers.get("x-amz-date")))
        if got_headers.get("x-amz-security-token") != want["x-amz-security-token"]:
            problems.append(("X-Amz-Security-Token", "(differs)", "(differs)"))
        if problems:
            failures += 1
            if failures <= 5:
                print(f"MISMATCH for {case['method']} {case['url']!r} "
                      f"service={case['service']} region={case['region']}")
                for name, w, g in problems:
                    print(f"  {name}:\n    botocore: {w}\n    ours:     {g}")
                print("  botocore canonical request:\n" + want["canonical_request"])
                print("  our canonical request:\n" + str(got.get("canonical_request")))
    print(f"{len(cases) - failures}/{len(cases)} signatures identical to botocore "
          f"({len(services)} services, {with_token} with session tokens)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
