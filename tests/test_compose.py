"""docker-compose.yml and the Dockerfile, read as files: no Docker engine is needed.

Each service must run a real entry point of the project, get its secrets from ``.env``, wait for
services that exist, come back after a crash and say whether it is healthy. Redis must keep what
it queues (append-only, no eviction) and exactly one beat may run. Where a Docker daemon
answers, ``docker compose config`` must accept the file too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: the project's own image runs ``dispatcher`` unless a service names another entry point
IMAGE_ENTRYPOINT = ["dispatcher"]
#: services that do their work and exit; every other one runs until stopped
ONE_SHOT = {"migrate", "producer"}
#: environment keys that hold secrets
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|APIKEY|API_KEY|PRIVATE_KEY|AUTH", re.IGNORECASE)
#: a ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message} or ${VAR?message} reference
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """The keys .env.example documents, with their committed values."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def is_project_image(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("smsdispatch")


def argv(service: dict[str, Any]) -> list[str]:
    """The command line a service runs: its entry point, then its command."""
    entrypoint = service.get("entrypoint", IMAGE_ENTRYPOINT)
    command = service.get("command", [])
    assert isinstance(entrypoint, list) and isinstance(command, list), "write commands as lists"
    return [*entrypoint, *command]


def interpolate(args: list[str]) -> list[str]:
    """Arguments as compose hands them over with nothing set: defaults in, $$ as $."""
    return [VAR_REF.sub(lambda m: m.group(3) or "", a).replace("$$", "$") for a in args]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def celery_command(args: list[str]) -> str | None:
    """The celery subcommand of ``celery -A tasks <cmd> ...``, or None for another program."""
    if args[:1] != ["celery"]:
        return None
    assert args[1:3] == ["-A", "tasks"], f"celery must load the project's app: {args}"
    return args[3]


def long_running() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in SERVICES.items() if name not in ONE_SHOT}


def test_dispatcher_commands_parse_with_the_projects_own_parser() -> None:
    # Given every service that runs `dispatcher <subcommand> ...`
    commands = {name: argv(s) for name, s in SERVICES.items() if is_project_image(s)}
    dispatcher = {name: args for name, args in commands.items() if args[0] == "dispatcher"}
    assert {"migrate", "webhooks", "sandbox", "producer"} <= set(dispatcher)
    for name, args in dispatcher.items():
        # When the project's parser reads its arguments, Then it knows the subcommand and options
        try:
            _parser().parse_args(args[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{' '.join(args)}` is not a valid dispatcher command")
    assert {a[0] for a in commands.values()} <= {"dispatcher", "celery"}


def test_celery_commands_load_the_real_app_and_accept_their_options() -> None:
    # Given every service that runs celery, and the worker's health check
    runs = {name: argv(s) for name, s in SERVICES.items() if celery_command(argv(s))}
    assert sorted(celery_command(a) for a in runs.values()) == ["beat", "flower", "worker"]
    checks = [interpolate(runs[name]) for name in sorted(runs)]
    checks.append(interpolate(SERVICES["worker"]["healthcheck"]["test"][1].split()))
    for args in checks:
        # When celery reads the command line with --help, Then the app module and every option exist
        done = subprocess.run(
            [sys.executable, "-m", "celery", *args[1:], "--help"],
            cwd=ROOT, env={**os.environ, "REDIS_URL": "memory://localhost/"}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"`{' '.join(args)}`: {done.stderr[-2000:]}"


def test_the_worker_consumes_every_queue_and_its_health_check_pings_itself() -> None:
    import celeryconfig

    args = argv(SERVICES["worker"])
    queues = args[args.index("-Q") + 1].split(",")
    assert sorted(queues) == sorted(q.name for q in celeryconfig.task_queues)
    assert args[args.index("-n") + 1] == "celery@%h"
    # $$ reaches the container as $, so the check pings the node named after its own hostname.
    assert "inspect ping -d celery@$$HOSTNAME" in " ".join(SERVICES["worker"]["healthcheck"]["test"])


def test_every_variable_is_defaulted_here_or_documented_in_env_example() -> None:
    # Given every ${VAR} of the compose file and what .env.example documents
    refs = VAR_REF.findall((ROOT / "docker-compose.yml").read_text())
    documented = env_example()
    # Then each variable has a default here or a line in .env.example
    missing = sorted({name for name, op, _ in refs if name not in documented and not op.endswith("-")})
    assert missing == [], f"not in .env.example: {missing}"
    # And .env.example documents nothing the compose file does not use
    assert sorted(set(documented) - {name for name, _, _ in refs}) == []
    # And it is committed without values
    assert {key: value for key, value in documented.items() if value} == {}


def test_no_secret_has_a_literal_value() -> None:
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                # A secret comes from .env: a reference whose default, if any, is empty.
                match = VAR_REF.fullmatch(value)
                assert match, f"{name}.{key} has a literal value"
                operator, default = match.group(2) or "", match.group(3) or ""
                assert not (operator.endswith("-") and default), f"{name}.{key} has a literal default"
            for password in re.findall(r"://[^:/@\s]+:(.*)@[^@]*$", value):
                assert VAR_REF.fullmatch(password), f"{name}.{key} holds a literal password"
        for arg in argv(service) if is_project_image(service) else []:
            assert not re.match(r"--(basic-auth|password|token)", arg), f"{name}: secret on the command line"
    # And the accounts file reaches the app services read-only
    mount = next(v for v in SERVICES["worker"]["volumes"] if v["target"] == "/etc/smsdispatch/accounts.toml")
    assert mount["read_only"] is True
    assert environment(SERVICES["flower"])["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH")


def test_depends_on_names_services_that_exist_and_the_app_waits_for_migrate() -> None:
    for name, service in SERVICES.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on {dependency}, which is not a service"
            assert how["condition"] in ("service_started", "service_healthy", "service_completed_successfully")
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}'s health"
    # Every service of the project that touches the database starts after the migration.
    for name, service in SERVICES.items():
        if is_project_image(service) and name not in ("migrate", "sandbox"):
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_redis_runs_append_only_with_noeviction_on_a_volume() -> None:
    redis = SERVICES["redis"]
    args = redis["command"]
    options = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    assert args[0] == "redis-server"
    assert options.get("--appendonly") == "yes"
    assert options.get("--appendfsync") == "everysec"
    assert options.get("--maxmemory-policy") == "noeviction"
    assert any(v.split(":")[0] in COMPOSE["volumes"] and v.split(":")[1] == "/data" for v in redis["volumes"])


def test_exactly_one_beat() -> None:
    beats = [name for name, s in SERVICES.items() if celery_command(argv(s)) == "beat"]
    assert beats == ["beat"]
    service = SERVICES["beat"]
    assert service.get("deploy", {}).get("replicas", 1) == 1 and "scale" not in service
    # A worker started with -B would be a second beat.
    for name, s in SERVICES.items():
        assert not {"-B", "--beat"} & set(argv(s)), f"{name} embeds a beat"


def test_every_long_running_service_restarts_and_has_a_health_check() -> None:
    for name, service in long_running().items():
        assert service.get("restart") == "unless-stopped", f"{name} does not come back after a crash"
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    # Only the one-shot services may stay down once they exit.
    for name in ONE_SHOT:
        assert SERVICES[name]["restart"] == "no"


def test_profiles_and_monitoring_targets() -> None:
    profiles = {name: s.get("profiles", []) for name, s in SERVICES.items()}
    assert {n for n, p in profiles.items() if "demo" in p} == {"sandbox", "producer"}
    assert {n for n, p in profiles.items() if "monitoring" in p} == {"prometheus", "grafana"}
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {("/metrics", "worker:9808"), ("/metrics", "webhooks:8080")} <= targets
    # Grafana's dashboard reads the data source it is provisioned with.
    grafana = ROOT / "deploy" / "grafana"
    source = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((grafana / "dashboards/smsdispatch.json").read_text())
    assert dashboard["panels"] and {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}
    # Every file the compose file mounts from the repository is there.
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_the_dockerfile_installs_the_ops_extra_and_runs_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    final = stages[-1]
    base = re.match(r"python:\$\{PYTHON_VERSION\}-slim|python:(\d+)\.(\d+)-slim", final)
    assert base, "the image starts from a slim Python"
    version = re.search(r"ARG PYTHON_VERSION=3\.(\d+)", text)
    assert version and int(version.group(1)) >= 11
    assert re.search(r"pip install .*'\.\[ops\]'", text), "installs the project with its ops extra"
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the final image runs as a user of its own"
    assert re.search(r'^ENTRYPOINT \["dispatcher"\]', final, flags=re.MULTILINE)
    assert not re.search(r"apt-get install|build-essential|gcc", final), "no build tools in the final image"


def docker_daemon() -> str | None:
    """Why ``docker compose config`` cannot run here, or None when a daemon answers."""
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else "no Docker daemon answers `docker info`"


def test_docker_compose_config_accepts_the_file() -> None:
    reason = docker_daemon()
    if reason:
        pytest.skip(f"{reason}: `docker compose config` needs a Docker engine (the file is checked above)")
    env = {**os.environ, **{key: "placeholder" for key in env_example()}}
    env["ACCOUNTS_FILE"] = "./deploy/sandbox-accounts.toml"
    env.pop("WORKER_CONCURRENCY", None)
    done = subprocess.run(
        ["docker", "compose", "--profile", "demo", "--profile", "monitoring", "config", "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_dashboard_queries_only_metrics_the_project_exports() -> None:
    # Given every smsdispatch_* series the Grafana dashboard queries
    import re

    from dispatcher import metrics

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "smsdispatch.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {m for e in exprs for m in re.findall(r"smsdispatch_[a-z_]+", e)}
    # Then each is one the worker exports (counters end in _total, histograms in _bucket)
    exported = {f"smsdispatch_messages_{name}_total" for name in metrics.MESSAGE_COUNTERS}
    exported |= {"smsdispatch_vendor_request_seconds_bucket", "smsdispatch_rate_limit_waits_total",
                 "smsdispatch_balance", "smsdispatch_queue_depth", "smsdispatch_poll_lag_seconds"}  # fmt: skip
    assert queried and queried <= exported, sorted(queried - exported)
