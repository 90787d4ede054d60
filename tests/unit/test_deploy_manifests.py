"""The deployment files: the image, the Compose file, the Kubernetes manifests, the topic job.

No Docker daemon and no cluster here: each file is checked against its schema (Kubernetes'
OpenAPI schemas through ``kubernetes-validate``, strict, at one pinned version; the Compose
Specification's JSON schema, vendored in ``tests/fixtures/compose-spec/``) and against the code it
deploys, so that a setting that does not exist, a topic nobody creates, a probe on a path the
services do not serve or a second image fails here rather than on someone's cluster.
"""

from __future__ import annotations

import http.server
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import certifi
import jsonschema
import kubernetes_validate
import pytest
import yaml

from libs.common import topics
from libs.common.config import ServiceSettings
from libs.common.service import ServiceDefinition

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
#: The Kubernetes release the manifests are checked against: what they must be valid for.
KUBERNETES_VERSION = "1.32.0"
#: In deploy/k8s but deliberately not in its kustomization (see the comments in each file).
APPLIED_SEPARATELY = {"secret.example.yaml", "migrations-job.yaml"}


# --- what the code says -------------------------------------------------------------------------


def service_names() -> list[str]:
    return sorted(path.parent.name for path in (ROOT / "services").glob("*/__main__.py"))


@cache
def settings_classes() -> dict[str, type[ServiceSettings]]:
    """Each service's settings class, found in its config module (the one ``__main__`` builds)."""
    found: dict[str, type[ServiceSettings]] = {}
    for name in service_names():
        module = importlib.import_module(f"services.{name}.config")
        classes = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value is not ServiceSettings
            and value.__module__ == module.__name__
        ]
        assert len(classes) == 1, f"services/{name}/config.py should define one settings class"
        found[name] = classes[0]
    return found


def env_names(settings: type[ServiceSettings]) -> set[str]:
    """The environment variables a settings class reads (its aliases, or its field names)."""
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add((alias if isinstance(alias, str) else field_name).upper())
    return names


def every_setting() -> set[str]:
    return set().union(*(env_names(cls) for cls in settings_classes().values()))


def service_definition(name: str) -> ServiceDefinition:
    build = importlib.import_module(f"services.{name}.main").build
    definition: ServiceDefinition = build(settings_classes()[name]())
    return definition


# --- the files ----------------------------------------------------------------------------------


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path.name, document


def k8s_of(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_nps_services() -> dict[str, dict[str, Any]]:
    """The Compose services that run the platform's image (the five and their migrations)."""
    services = compose()["services"]
    image = services["migrations"]["image"]
    return {name: spec for name, spec in services.items() if spec.get("image") == image}


def env_example() -> dict[str, str]:
    """deploy/compose.env.example's names, the commented-out optional ones too."""
    found = {}
    for line in (DEPLOY / "compose.env.example").read_text().splitlines():
        match = re.match(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def modules_run(command: list[str] | str) -> list[tuple[str, str]]:
    """The ``python -m services.<name> [migrate]`` a command runs, as (service, subcommand)."""
    text = command if isinstance(command, str) else " ".join(command)
    runs = []
    # The migration loops name the services in a shell `for` and run services.$service.
    for loop in re.finditer(r"for (\w+) in ([\w ]+); do python -m services\.\$\$?\1 (\w+)", text):
        runs += [(name, loop.group(3)) for name in loop.group(2).split()]
    for match in re.finditer(r"python -m services\.(\w+)(?: (\w+))?", text):
        runs.append((match.group(1), match.group(2) or "serve"))
    return runs


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_every_kubernetes_manifest_is_valid_for_the_pinned_release(path: str) -> None:
    documents = [doc for doc in yaml.safe_load_all((K8S / path).read_text()) if doc is not None]
    assert documents, f"{path} is empty"
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            pytest.fail(
                f"{path}: {document['kind']} {document['metadata']['name']}: {where}: {error.message}"
            )


def test_the_kustomization_lists_every_manifest_but_the_two_applied_apart() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= present, f"listed but missing: {sorted(listed - present)}"
    assert present - listed == APPLIED_SEPARATELY
    assert kustomization["namespace"] == "nps"
    assert {doc["metadata"].get("namespace") for _, doc in k8s_documents() if doc["kind"] != "Namespace"} == {
        "nps"
    }


def test_each_service_has_a_deployment_service_budget_and_autoscaler_that_match_its_pods() -> None:
    deployments, services = k8s_of("Deployment"), k8s_of("Service")
    budgets, autoscalers = k8s_of("PodDisruptionBudget"), k8s_of("HorizontalPodAutoscaler")
    assert set(deployments) == set(service_names())
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        selects = deployment["spec"]["selector"]["matchLabels"]
        assert selects.items() <= labels.items(), f"{name}: the Deployment's selector misses its pods"
        assert services[name]["spec"]["selector"].items() <= labels.items(), f"{name}: Service selects no pod"
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        target = autoscalers[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        # The autoscaler owns the count; a fixed one would be reset by every apply.
        assert "replicas" not in deployment["spec"]
        assert autoscalers[name]["spec"]["minReplicas"] >= 2
        assert budgets[name]["spec"]["minAvailable"] < autoscalers[name]["spec"]["minReplicas"]
        assert [m["resource"]["name"] for m in autoscalers[name]["spec"]["metrics"]] == ["cpu"]
        (container,) = pod["spec"]["containers"]
        assert modules_run(container["command"]) == [(name, "serve")]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"requests", "limits"} <= set(container["resources"])
        # The Service's targetPort and the probes name the port the container listens on.
        (port,) = container["ports"]
        assert services[name]["spec"]["ports"][0]["targetPort"] == port["name"]
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] == dockerfile_uid()
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_the_services_listen_where_the_probes_and_services_look() -> None:
    config = k8s_of("ConfigMap")["nps-config"]["data"]
    for name, deployment in k8s_of("Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"][0]["containerPort"] == int(config["HTTP_PORT"]), name
    assert config["HTTP_HOST"] == "0.0.0.0", "on 127.0.0.1 no probe or Service would reach the pod"


def test_the_migrations_job_migrates_every_service_and_the_deployments_do_not() -> None:
    (job,) = k8s_of("Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert sorted(modules_run(container["command"])) == sorted((name, "migrate") for name in service_names())
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    config = k8s_of("ConfigMap")["nps-config"]["data"]
    assert config["NPS_MIGRATE_ON_START"] == "false"
    assert ServiceSettings(NPS_MIGRATE_ON_START=config["NPS_MIGRATE_ON_START"]).migrate_on_start is False


def test_the_network_policy_denies_by_default_and_lets_the_http_port_in() -> None:
    policies = k8s_of("NetworkPolicy")
    deny = [p for p in policies.values() if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed_in = {
        port["port"] for policy in policies.values() for rule in policy["spec"].get("ingress", [])
        for port in rule["ports"]
    }  # fmt: skip
    assert allowed_in == {"http"}
    allowed_out = {
        port["port"] for policy in policies.values() for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }  # fmt: skip
    assert {53, 5432, 9092, 587} <= allowed_out


def test_configmap_and_secret_set_only_real_settings() -> None:
    known = every_setting()
    for name in ("nps-config", "nps-secrets"):
        (document,) = [doc for _, doc in k8s_documents() if doc["metadata"]["name"] == name]
        keys = set(document.get("data") or document.get("stringData") or {})
        assert keys, name
        assert keys <= known, f"{name} sets what no service reads: {sorted(keys - known)}"


def test_the_example_secret_holds_the_secrets_and_only_placeholders(tmp_path: Path) -> None:
    secret = k8s_of("Secret")["nps-secrets"]["stringData"]
    secret_settings = {
        name.upper()
        for cls in settings_classes().values()
        for name in cls().secret_values()
        if name.upper() in every_setting()
    }
    assert secret_settings <= set(secret), f"secrets left out: {sorted(secret_settings - set(secret))}"
    for key in ("NPS_ADMIN_TOKEN", "SURVEY_TOKEN_SECRET", "KAFKA_SASL_PASSWORD"):
        assert secret[key] == "change-me", "a service must refuse to start with the example's value"
    # A service built from this ConfigMap and Secret as they ship (the CA files mounted) refuses to
    # start, naming the placeholder.
    environment = {**k8s_of("ConfigMap")["nps-config"]["data"], **secret}
    (tmp_path / "tls").mkdir()
    for name in ("kafka-ca.crt", "pg-ca.crt"):
        (tmp_path / "tls" / name).write_text(Path(certifi.where()).read_text())
    mounted = {
        key: value.replace("/etc/nps/tls", str(tmp_path / "tls")) for key, value in environment.items()
    }
    with pytest.raises(ValueError, match="NPS_ADMIN_TOKEN is a placeholder"):
        settings_classes()["survey"](**mounted)


# --- Compose ------------------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_runs_each_service_twice_after_its_migrations_and_topics() -> None:
    services = compose_nps_services()
    running = {name: spec for name, spec in services.items() if name != "migrations"}
    assert set(running) == set(service_names())
    for name, spec in running.items():
        assert modules_run(spec["command"]) == [(name, "serve")]
        assert spec["deploy"]["replicas"] == 2
        assert spec["depends_on"]["migrations"]["condition"] == "service_completed_successfully"
        assert spec["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(spec["healthcheck"]["test"])
        environment = spec["environment"]
        assert environment["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert environment["NPS_MIGRATE_ON_START"] == "false"
        assert environment["HTTP_HOST"] == "0.0.0.0"
        assert any(port.endswith(":" + environment["HTTP_PORT"]) for port in spec["ports"])
    migrations = services["migrations"]
    assert sorted(modules_run(migrations["command"])) == sorted((n, "migrate") for n in service_names())
    assert migrations["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_runs_three_kraft_brokers_with_replication_three_and_min_isr_two() -> None:
    services = compose()["services"]
    brokers = {
        name: spec for name, spec in services.items() if name.startswith("kafka-") and name[-1].isdigit()
    }
    assert len(brokers) == 3
    voters = {spec["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for spec in brokers.values()}
    assert len(voters) == 1
    node_ids = {spec["environment"]["KAFKA_NODE_ID"] for spec in brokers.values()}
    assert voters.pop().split(",") == [
        f"{node}@{name}:9093" for name, node in zip(sorted(brokers), sorted(node_ids), strict=True)
    ]
    for spec in brokers.values():
        env = spec["environment"]
        assert spec["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    topic_job = services["kafka-topics"]["environment"]
    assert (topic_job["REPLICATION_FACTOR"], topic_job["MIN_INSYNC_REPLICAS"]) == ("3", "2")
    bootstrap = set(compose_nps_services()["trigger"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(","))
    assert bootstrap == {f"{name}:9092" for name in brokers}


def test_compose_sets_only_real_settings_and_defines_every_variable_it_uses() -> None:
    classes = settings_classes()
    for name, spec in compose_nps_services().items():
        # The migrations run every service's settings class, so they may set only what all read.
        known = env_names(classes[name]) if name in classes else set.intersection(
            *(env_names(cls) for cls in classes.values())
        )  # fmt: skip
        unknown = set(spec["environment"]) - known
        assert not unknown, f"compose service {name} sets what it does not read: {sorted(unknown)}"
        assert spec["env_file"] == ["compose.env"]
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    example = env_example()
    assert used <= set(example), (
        f"compose.yaml uses, compose.env.example lacks: {sorted(used - set(example))}"
    )
    dead = set(example) - used - every_setting()
    assert not dead, f"compose.env.example sets what nothing reads: {sorted(dead)}"
    # The secrets are empty in the example, never real values.
    for name in ("POSTGRES_PASSWORD", "NPS_ADMIN_TOKEN", "SURVEY_TOKEN_SECRET", "GRAFANA_ADMIN_PASSWORD"):
        assert example[name] == "", f"{name} must be filled in by the user"


def test_compose_mounts_the_monitoring_configuration_where_it_is_written() -> None:
    services = compose()["services"]
    mounts = {
        name: {volume.split(":")[0]: volume.split(":")[1] for volume in spec.get("volumes", [])}
        for name, spec in services.items()
    }
    assert mounts["prometheus"]["./compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["prometheus"]["./prometheus/rules"] == "/etc/prometheus/rules"
    assert mounts["alertmanager"]["./compose/alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"
    assert mounts["grafana"]["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["grafana"]["./grafana/dashboards"] == "/var/lib/grafana/dashboards"
    for name, spec in mounts.items():
        for source in spec:
            if source.startswith("./") and "rules" not in source and "grafana" not in source:
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    (scrape,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "nps"]
    (discovery,) = scrape["dns_sd_configs"]
    assert sorted(discovery["names"]) == service_names()
    assert str(discovery["port"]) == compose_nps_services()["trigger"]["environment"]["HTTP_PORT"]


def test_promtool_accepts_the_prometheus_configuration() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(DEPLOY / "compose" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_only_to_receivers_it_defines() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "alertmanager.yml").read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}

    def routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield route
        for child in route.get("routes", []):
            yield from routes(child)

    assert {route["receiver"] for route in routes(config["route"]) if "receiver" in route} <= receivers


# --- the image ----------------------------------------------------------------------------------


def dockerfile_uid() -> int:
    (user,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    return int(user.split(":")[0])


def test_the_dockerfile_builds_in_stages_runs_unprivileged_and_checks_its_health() -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "a builder stage and a slim runtime stage"
    final = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[final:] if keyword == "USER"]
    assert users and dockerfile_uid() != 0 and users[-1].split(":")[0] not in ("root", "0")
    (healthcheck,) = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "HTTP_PORT" in healthcheck and "curl" not in healthcheck
    installs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "[embedded]" not in installs and "pip install" in installs
    (command,) = [rest for keyword, rest in instructions if keyword in ("CMD", "ENTRYPOINT")]
    for name, _ in modules_run(" ".join(json.loads(command))):
        assert (ROOT / "services" / name / "__main__.py").is_file(), f"CMD runs services.{name}, which is not"


class _Health(http.server.BaseHTTPRequestHandler):
    healthy: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        self.send_response(200 if self.path in self.healthy else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _run_check(command: list[str], port: int) -> int:
    """Run a healthcheck command here, as the container would (``python`` is this one)."""
    assert command[0] == "python", "slim images have python, not curl"
    environment = {**os.environ, "HTTP_PORT": str(port)}
    return subprocess.run(
        [sys.executable, *command[1:]], env=environment, check=False, capture_output=True
    ).returncode


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Health
    finally:
        server.shutdown()
        _Health.healthy = set()


def test_the_healthchecks_pass_on_a_healthy_service_and_fail_otherwise(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, handler = health_server
    (healthcheck,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    image_check = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    compose_check = compose_nps_services()["trigger"]["healthcheck"]["test"]
    assert compose_check[0] == "CMD"
    # Compose's containers listen on 8000, which its check names: point it at the test server.
    compose_check = [part.replace(":8000/", f":{port}/") for part in compose_check[1:]]
    assert _run_check(image_check, port) != 0 and _run_check(compose_check, port) != 0
    handler.healthy = {"/healthz"}
    assert _run_check(image_check, port) == 0, "the image's check asks /healthz on HTTP_PORT"
    assert _run_check(compose_check, port) != 0, "compose's check asks /readyz"
    handler.healthy = {"/healthz", "/readyz"}
    assert _run_check(compose_check, port) == 0


def test_the_build_context_carries_what_the_image_installs() -> None:
    """.dockerignore lets in exactly what the Dockerfile copies, and what pip needs of it."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {
        shlex.split(rest)[0].rstrip("/")
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
    }
    assert copied == allowed
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject)
    assert packages is not None
    assert {name.strip('" *') for name in packages.group(1).split(",")} <= allowed


def test_every_service_in_compose_and_kubernetes_runs_the_same_image() -> None:
    compose_images = {spec["image"] for spec in compose_nps_services().values()}
    assert len(compose_images) == 1
    k8s_images = {
        container["image"]
        for kind in ("Deployment", "Job")
        for document in k8s_of(kind).values()
        for container in document["spec"]["template"]["spec"]["containers"]
    }
    assert len(k8s_images) == 1, f"more than one image in deploy/k8s: {sorted(k8s_images)}"
    compose_default = re.fullmatch(r"\$\{NPS_IMAGE:-([^}]+)\}", compose_images.pop())
    assert compose_default is not None, "compose takes the image from NPS_IMAGE"
    repository = {image.rsplit(":", 1)[0] for image in (compose_default.group(1), k8s_images.pop())}
    assert repository == {"nps-platform"}


# --- topics -------------------------------------------------------------------------------------


def created_topics() -> dict[str, int]:
    script = (DEPLOY / "compose" / "create-topics.sh").read_text()
    return {name: int(count) for name, count in re.findall(r"^create (\S+) (\d+)$", script, re.MULTILINE)}


def test_the_topic_job_creates_every_topic_with_its_partition_count() -> None:
    assert created_topics() == topics.ALL_TOPICS


def test_the_topic_job_sets_seven_days_of_retention_whatever_the_cluster_default(tmp_path: Path) -> None:
    """Run the script with a stand-in for Kafka's CLI that records its arguments: every topic is
    created with an explicit retention (how long an erased customer's events stay on the broker)."""
    calls = tmp_path / "calls"
    cli = tmp_path / "kafka-topics.sh"
    cli.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    cli.chmod(0o755)
    script = DEPLOY / "compose" / "create-topics.sh"
    environment = {"PATH": os.environ["PATH"], "BOOTSTRAP": "kafka-1:9092", "TOPICS_CLI": str(cli)}
    subprocess.run(["sh", str(script)], env=environment, check=True, timeout=30)
    lines = calls.read_text().splitlines()
    assert len(lines) == len(topics.ALL_TOPICS)
    assert all("--config retention.ms=604800000" in line for line in lines), lines[0]
    subprocess.run(["sh", str(script)], env={**environment, "RETENTION_HOURS": "24"}, check=True, timeout=30)
    assert "--config retention.ms=86400000" in calls.read_text().splitlines()[-1]


def test_every_topic_the_code_names_or_consumes_is_in_the_topic_list() -> None:
    named = {value for value in vars(topics).values() if isinstance(value, str) and value.startswith("nps.")}
    consumed = {
        topic
        for name in service_names()
        for spec in service_definition(name).consumers
        for topic in spec.topics
    }
    assert consumed, "the services consume something"
    created = created_topics()
    for topic in named | consumed:
        assert topic in created, f"{topic} is used but never created"
        assert topics.dlq(topic) in created, f"{topic}'s DLQ is never created"


def test_the_deploy_readme_gives_every_topic_its_partition_count() -> None:
    readme = (DEPLOY / "README.md").read_text()
    rows = {
        name: int(count) for name, count in re.findall(r"^\| `([a-z.-]+)` \| (\d+) \|", readme, re.MULTILINE)
    }
    assert rows == topics.MAIN_TOPICS
