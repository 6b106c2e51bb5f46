"""Step processes inherit the TLS contexts their worker built before forking them
(runbook.adapters.http.before_fork / tls): same verification as httpx's own, and never used by
the process that built them."""

from __future__ import annotations

import os
import pickle
import ssl

from runbook.adapters import http


def in_child(fn):
    """Run ``fn`` in a forked child (as the worker runs a step) and return what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(r)
            os.write(w, pickle.dumps(fn()))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def describe(verify: object) -> tuple:
    if isinstance(verify, ssl.SSLContext):
        return ("context", verify.verify_mode, verify.check_hostname,
                len(verify.get_ca_certs()) > 0)
    return ("plain", verify)


def test_the_building_process_never_uses_the_contexts_itself():
    http.before_fork()
    assert http.tls(True) is True and http.tls(False) is False, \
        "the worker's own process must let httpx build its contexts"
    client = http.client(http.Probe())
    try:
        assert client is not None
    finally:
        client.close()


def test_a_forked_step_process_gets_contexts_that_verify_like_httpx():
    http.before_fork()
    verifying, plain = in_child(lambda: (describe(http.tls(True)), describe(http.tls(False))))
    assert verifying == ("context", ssl.CERT_REQUIRED, True, True), \
        "verify=True must check certificates and host names against a loaded CA bundle"
    assert plain == ("context", ssl.CERT_NONE, False, False)


def test_before_fork_is_idempotent_in_one_process():
    http.before_fork()
    first = dict(http._FORK_TLS)
    http.before_fork()
    assert http._FORK_TLS == first, "a second call must not rebuild the contexts"



def test_the_worker_looks_up_the_compose_cli_once_for_its_step_processes(monkeypatch):
    from runbook.adapters import stepkit
    from runbook.target import TargetConfig
    from runbook.target_deployers import ComposeDeployerConfig, ServiceImage

    asked: list[str | None] = []

    class InlineThread:  # the lookup's thread, run at once so the test need not wait
        def __init__(self, target, name, daemon):
            self.target = target

        def start(self):
            self.target()

    monkeypatch.setattr(stepkit.threading, "Thread", InlineThread)
    monkeypatch.setattr(stepkit, "compose_cli",
                        lambda docker_host=None: asked.append(docker_host) or ["docker"])
    required: dict = {"compose_file": "compose.yaml", "project": "p", "registry": "r",
                      "services": [ServiceImage(service="a", repository="a", tag_variable="A")]}
    stepkit.prepare_step_processes(TargetConfig(deployer=ComposeDeployerConfig(
        **required, docker_host="unix:///tmp/x.sock")))
    assert asked == ["unix:///tmp/x.sock"], "the compose CLI was not looked up for the target"
    # A configured compose command needs no lookup; a target without a deployer neither.
    stepkit.prepare_step_processes(TargetConfig(deployer=ComposeDeployerConfig(
        **required, compose_command=["docker", "compose"])))
    stepkit.prepare_step_processes(None)
    assert asked == ["unix:///tmp/x.sock"]
