"""deploy/kubernetes and deploy/systemd: valid for Kubernetes (kubernetes-validate's bundled schemas)
and systemd (`systemd-analyze verify`), running exactly the Procfile's commands, every Deployment
with probes, resources and a disruption budget, and every queue consumed by some worker."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from connectors.internal import INTERNAL_SOURCE
from events.queue import queue_groups
from events.sources import load_sources
from tests.conftest import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
PROCFILE = DEPLOY.parent / "Procfile"
KUBERNETES_VERSION = "1.32.0"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def procfile() -> dict[str, list[str]]:
    """role → command, each `${VAR:-default}` at its default."""
    roles = {}
    for line in PROCFILE.read_text().splitlines():
        role, command = line.split(":", 1)
        roles[role] = shlex.split(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command))
    return roles


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in resources() if doc["kind"] == kind]


def env_config() -> dict[str, str]:
    [env] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "hookyard-env"]
    return dict(env["data"])


def command(container: dict[str, Any]) -> list[str]:
    """The container's command with Kubernetes' `$(VAR)` expanded from the ConfigMap."""
    env = env_config()
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["command"]]


def containers(kind: str = "Deployment") -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], c) for d in of_kind(kind) for c in d["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    """Strict: an unknown or misspelt field fails, as it would on `kubectl apply --validate=strict`."""
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomize_applies_every_file_and_one_image() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    [image] = kustomization["images"]
    every = [c for kind in ("Deployment", "Job") for _, c in containers(kind)]
    assert {c["image"] for c in every} == {image["name"]}


def test_every_container_runs_a_procfile_command() -> None:
    """web, beat and the migrate Job run their Procfile line as it is; workers add a queue group
    and a metrics port, nothing else."""
    roles = procfile()
    [(_, migrate)] = containers("Job")
    assert command(migrate) == roles["release"]
    for name, container in containers():
        role = name.removeprefix("hookyard-").split("-")[0]
        if role == "worker":
            args = command(container)[len(roles["worker"]) :]
            assert command(container)[: len(roles["worker"])] == roles["worker"]
            assert dict(zip(args[::2], args[1::2], strict=True)).keys() == {
                "--group",
                "--metrics-port",
                "--metrics-host",
            }
        else:
            assert command(container) == roles[role], name


def test_every_queue_has_a_worker_deployment() -> None:
    """The worker Deployments' groups are exactly Hookyard's queue groups: no queue left unconsumed."""
    groups = [command(c)[command(c).index("--group") + 1] for n, c in containers() if "worker" in n]
    assert sorted(groups) == sorted(queue_groups([]))


def test_web_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    [(_, web)] = [(n, c) for n, c in containers() if n == "hookyard-web"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [service] = of_kind("Service")
    assert service["spec"]["selector"] == labels("hookyard-web")
    [hpa] = of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "hookyard-web"


def test_workers_are_probed_by_celery_ping_on_their_own_node() -> None:
    """`hookyard worker --group G` names its node G@host: the probe pings that node."""
    for name, container in containers():
        if "worker" in name:
            group = command(container)[command(container).index("--group") + 1]
            probe = " ".join(container["livenessProbe"]["exec"]["command"])
            assert f'inspect ping --destination "{group}@$HOSTNAME"' in probe, name


def test_every_container_requests_cpu_and_memory_and_caps_memory() -> None:
    every = [*containers(), *containers("Job")]
    for name, container in every:
        res = container["resources"]
        assert {"cpu", "memory"} <= res["requests"].keys() and "memory" in res["limits"], name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def labels(deployment: str) -> dict[str, str]:
    [found] = [d for d in of_kind("Deployment") if d["metadata"]["name"] == deployment]
    return dict(found["spec"]["template"]["metadata"]["labels"])


def test_every_deployment_has_a_disruption_budget_and_beat_runs_two() -> None:
    budgets = {b["metadata"]["name"]: b for b in of_kind("PodDisruptionBudget")}
    for deployment in of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels(name)
        assert deployment["spec"]["selector"]["matchLabels"] == labels(name)
    [beat] = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "hookyard-beat"]
    assert beat["spec"]["replicas"] == 2


def test_the_sources_file_in_the_config_map_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example sources validate, given the Secret's variables."""
    [sources] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "hookyard-sources"]
    path = tmp_path / "hookyard.toml"
    path.write_text(sources["data"]["hookyard.toml"])
    for var in re.findall(r"\$\{(\w+)\}", path.read_text()):
        monkeypatch.setenv(var, "s3cret")
    assert {s.connector for s in load_sources(path).values()} == {"shopify", "stripe"}
    assert INTERNAL_SOURCE not in load_sources(path)


def units() -> list[Path]:
    return sorted(SYSTEMD.glob("*.service"))


def exec_start(path: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    words = shlex.split(parser["Service"]["ExecStart"])
    assert words[0] == "/opt/hookyard/venv/bin/hookyard"
    return ["hookyard", *words[1:]]


def test_systemd_units_run_the_procfile_commands() -> None:
    roles = procfile()
    found = {path.name: exec_start(path) for path in units()}
    assert found["hookyard-web.service"] == roles["web"]
    assert found["hookyard-beat.service"] == roles["beat"]
    assert found["hookyard-migrate.service"] == roles["release"]
    assert found["hookyard-worker@.service"] == [*roles["worker"], "--group", "%i"]


def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units (the venv path pointed at this one's `hookyard`), one
    worker instance per queue group; any warning about our files fails."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        need("systemd-analyze", FileNotFoundError("systemd-analyze (apt-get install systemd)"))
    hookyard = Path(sys.executable).with_name("hookyard")
    for path in SYSTEMD.iterdir():
        text = path.read_text().replace("/opt/hookyard/venv/bin/hookyard", str(hookyard))
        (tmp_path / path.name).write_text(text)
    names = [p.name for p in units() if "@" not in p.name] + ["hookyard.target"]
    names += [f"hookyard-worker@{group}.service" for group in queue_groups([])]
    result = subprocess.run(
        [str(analyze), "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "hookyard" in line]
    assert result.returncode == 0 and ours == [], result.stdout + result.stderr
