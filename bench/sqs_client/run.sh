#!/bin/sh
# Benchmark: our SQS client vs boto3 draining a queue with receive(10) +
# DeleteMessageBatch, against moto_server on a free loopback port.
#
# Usage: bench/sqs_client/run.sh [PATH_TO_sqs_client_bench] [MESSAGES]
# compare.py explains the rounds (moto slows down with long queues).
# (default binary: build/bench/sqs_client/sqs_client_bench; 5000 messages)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-$here/../../build/bench/sqs_client/sqs_client_bench}
n=${2:-5000}
[ -x "$bench" ] || { echo "no benchmark binary at $bench; build target sqs_client_bench" >&2; exit 2; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/sqs-bench-moto.XXXXXX)
moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; wait $moto_pid 2>/dev/null; rm -f "$log"' EXIT INT TERM
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.2
done

export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=AKIABENCH AWS_SECRET_ACCESS_KEY=benchsecret \
       AWS_EC2_METADATA_DISABLED=true
echo "moto_server $(python3 -c 'import moto; print(moto.__version__)') on port $port"
python3 "$here/compare.py" "$bench" --messages "$n"
