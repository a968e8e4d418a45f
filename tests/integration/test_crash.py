"""kill -9 of `local serve` with 200 tasks in flight, then a restart: every
task ends Complete, exactly one Job per message, nothing lost."""
import json
import signal
import subprocess
import time
import uuid

from conftest import Server, jobs, queue_status, run, state, wait_for


def test_kill_9_with_200_tasks_in_flight_loses_nothing(tmp_path, data_dir):
    marker = f"crash-marker-{uuid.uuid4().hex[:8]}"
    template = tmp_path / "job.yaml"
    template.write_text(f"""\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: crash-
spec:
  backoffLimit: 3
  template:
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "sleep 0.4; echo done $n", "{marker}"]
""")
    bodies = [json.dumps({"n": i}) for i in range(200)]
    (tmp_path / "tasks.jsonl").write_text("\n".join(bodies) + "\n")
    run("send", "--file", str(tmp_path / "tasks.jsonl"), data_dir=data_dir, check=0)

    # A short visibility timeout so that messages received before the crash but
    # not yet deleted come back within the test.
    args = ("--slots", "8", "--visibility-timeout", "3")
    first = Server(data_dir, template, *args)
    try:
        wait_for(lambda: sum(state(j) == "Complete" for j in jobs(data_dir)) >= 16,
                 timeout=60, what="some tasks to complete")
        running_before = sum(state(j) == "Running" for j in jobs(data_dir))
        first.stop(signal.SIGKILL)
    finally:
        first.stop(signal.SIGKILL)
    assert running_before > 0, "the crash must hit running attempts"
    complete_before = sum(state(j) == "Complete" for j in jobs(data_dir))
    assert complete_before < 200, "the crash came too late to test anything"

    # The attempts died with the executor (parent-death signal).
    wait_for(lambda: subprocess.run(["pgrep", "-f", marker]).returncode == 1,
             timeout=10, what="orphaned attempts to die")

    second = Server(data_dir, template, *args)
    try:
        final = wait_for(
            lambda: (lambda js: js if len(js) == 200 and all(
                state(j) in ("Complete", "Failed") for j in js) else None)(jobs(data_dir)),
            timeout=180, what="all 200 jobs to finish after the restart")
        wait_for(lambda: queue_status(data_dir)["queue"] ==
                 {"name": "tasks", "visible": 0, "inFlight": 0, "delayed": 0},
                 timeout=30, what="the queue to drain")
        logs = second.logs()
    finally:
        second.stop()

    # Exactly one Job per message and per task, every one Complete.
    message_ids = [j["metadata"]["annotations"]["cruncher.dev/message-id"] for j in final]
    assert len(set(message_ids)) == 200
    tasks = sorted(json.loads(j["metadata"]["annotations"]["task"])["n"] for j in final)
    assert tasks == list(range(200))
    assert [state(j) for j in final] == ["Complete"] * 200
    assert queue_status(data_dir)["deadLetterQueue"]["visible"] == 0
    # The restart recorded the attempts it found running as interrupted.
    assert "attempt_interrupted" in logs


def test_cli_commands_beside_serve_keep_its_wal_and_see_its_writes(data_dir, serve):
    """Regression: opening the database closed a descriptor of the file that
    the server's other connection held POSIX locks through; the next CLI
    process then believed it was the last user, checkpointed and deleted the
    server's WAL, and from then on nothing the server wrote was visible to
    other processes (and a kill -9 lost it)."""
    server = serve()
    wait_for(lambda: '"event":"serving"' in server.logs(), what="serving")
    run("status", data_dir=data_dir, check=0)
    assert (data_dir / "cruncher.db-wal").exists(), "a CLI command deleted the WAL"
    run("send", json.dumps({"n": 1, "sleep": 0, "code": 0}), data_dir=data_dir, check=0)
    done = wait_for(lambda: [j for j in jobs(data_dir) if state(j) == "Complete"],
                    timeout=30, what="the Job to be seen Complete by the CLI")
    assert len(done) == 1
    server.stop(signal.SIGKILL)
    assert [state(j) for j in jobs(data_dir)] == ["Complete"]
