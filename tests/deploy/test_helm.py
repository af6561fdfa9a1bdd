"""Tests for helm/watchdog: real `helm lint --strict`, `helm template`, kubernetes-validate,
and the structure an SRE relies on (security context, checksum restarts, HA wiring, schema)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CHART,
    DEPLOY,
    ROOT,
    Manifest,
    Pod,
    clean_env,
    find,
    materialize,
    run,
)
from tests.tools import require_tool

Helm = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., list[Manifest]]

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
DEFAULT = CHART / "ci" / "default-values.yaml"
HA = CHART / "ci" / "ha-values.yaml"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
#: what the test cluster's Secrets hold for env variables (the DSN is never contacted)
SECRET_KEYS = {("watchdog-store", "store-url"): "postgresql://watchdog:dummy@db.invalid/watchdog"}
ONE_TARGET = {"targets": [{"name": "api", "sources": [{"kind": "health", "url": "https://a/h"}]}]}


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Manifest) -> Manifest:
    (main,) = [c for c in pod_spec(workload)["containers"] if c["name"] == "watchdog"]
    return main


def checksum(manifests: list[Manifest]) -> str:
    workload = next(m for m in manifests if m["kind"] in ("StatefulSet", "Deployment"))
    value: str = workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    return value


def test_ci_values_cover_default_and_ha() -> None:
    """The chart ships ci values for the default, HA and minimal installs."""
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "ha-values.yaml",
        "minimal-values.yaml",
    }


def check(pod: Pod) -> subprocess.CompletedProcess[str]:
    """`watchdog check` on the pod's config, with the pod's env and nothing else."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "check", "--config", str(pod.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(pod.env),
        cwd=pod.root,
    )


@pytest.mark.tool
class TestLint:
    def test_chart_defaults_refuse_to_install(self, helm: Helm) -> None:
        """The bare defaults fail lint (and so `helm install`) saying what to set: the daemon
        rejects a config without targets, so the chart must not deploy a crash loop."""
        result = helm("lint", "--strict", str(CHART))
        assert result.returncode != 0
        assert "at '/config': missing property 'targets'" in result.stdout + result.stderr

    @pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
    def test_chart_lints_strictly_with_ci_values(self, helm: Helm, values: Path) -> None:
        """`helm lint --strict` passes with each ci values file."""
        result = helm("lint", "--strict", str(CHART), "--values", str(values))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tool
class TestKubernetesSchemas:
    @pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
    def test_rendered_manifests_validate(self, helm: Helm, tmp_path: Path, values: Path) -> None:
        """Every rendered manifest validates strictly against Kubernetes 1.30 schemas."""
        validator = require_tool("KUBERNETES_VALIDATE", "kubernetes-validate")
        args = ["template", "wd", str(CHART), "--namespace", "mon", "--values", str(values)]
        rendered = helm(*args)
        assert rendered.returncode == 0, rendered.stderr
        out = tmp_path / "rendered.yaml"
        out.write_text(rendered.stdout)
        result = run([validator, "--strict", "--quiet", "-k", "1.30.0", str(out)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ERROR" not in result.stdout


@pytest.mark.tool
class TestDefaultMode:
    def test_single_replica_statefulset_with_pvc(self, render: Render) -> None:
        """By default one StatefulSet replica keeps SQLite on a PVC mounted at /var/lib/watchdog."""
        manifests = render(DEFAULT)
        assert not [m for m in manifests if m["kind"] == "Deployment"]
        sts = find(manifests, "StatefulSet")
        assert sts["spec"]["replicas"] == 1
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        mounts = {m["name"]: m["mountPath"] for m in container(sts)["volumeMounts"]}
        assert mounts["data"] == "/var/lib/watchdog"
        assert "data" not in {v["name"] for v in pod_spec(sts)["volumes"]}

    def test_no_store_url_without_ha(self, render: Render) -> None:
        """The default mode passes no PostgreSQL DSN, so the daemon uses SQLite."""
        env = {e["name"] for e in container(find(render(DEFAULT), "StatefulSet")).get("env", [])}
        assert not {"WATCHDOG_STORE__URL", "WATCHDOG_STORE_URL"} & env

    def test_persistence_off_uses_an_emptydir(self, render: Render) -> None:
        """With persistence disabled the state volume is an emptyDir and no claim is made."""
        sts = find(render(DEFAULT, set_=("persistence.enabled=false",)), "StatefulSet")
        assert "volumeClaimTemplates" not in sts["spec"]
        volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
        assert "emptyDir" in volumes["data"]


@pytest.mark.tool
class TestSecurity:
    @pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
    def test_pod_and_container_are_locked_down(self, render: Render, values: Path) -> None:
        """Non-root, read-only root, no capabilities, no escalation, RuntimeDefault seccomp."""
        workload = next(m for m in render(values) if m["kind"] in ("StatefulSet", "Deployment"))
        pod = pod_spec(workload)["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] != 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        ctx = container(workload)["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert pod_spec(workload)["automountServiceAccountToken"] is False

    def test_tmp_is_writable_with_read_only_root(self, render: Render) -> None:
        """/tmp is a size-limited in-memory emptyDir, the only scratch space."""
        sts = find(render(DEFAULT), "StatefulSet")
        mounts = {m["name"]: m["mountPath"] for m in container(sts)["volumeMounts"]}
        assert mounts["tmp"] == "/tmp"
        tmp = {v["name"]: v for v in pod_spec(sts)["volumes"]}["tmp"]
        assert tmp["emptyDir"]["medium"] == "Memory"
        assert tmp["emptyDir"]["sizeLimit"]

    def test_resources_and_probes(self, render: Render) -> None:
        """Requests and a memory limit are set; liveness hits /healthz, readiness /readyz."""
        main = container(find(render(DEFAULT), "StatefulSet"))
        assert main["resources"]["requests"]["cpu"]
        assert main["resources"]["limits"]["memory"]
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["startupProbe"]["httpGet"]["path"] == "/healthz"

    def test_tokens_mount_as_files_from_an_existing_secret(self, render: Render) -> None:
        """The tokens Secret mounts read-only at /run/secrets/watchdog; nothing is in env."""
        sts = find(render(DEFAULT), "StatefulSet")
        mounts = {m["name"]: m for m in container(sts)["volumeMounts"]}
        assert mounts["secrets"]["mountPath"] == "/run/secrets/watchdog"
        assert mounts["secrets"]["readOnly"] is True
        volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "watchdog-tokens"
        assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
        assert not [m for m in render(DEFAULT) if m["kind"] == "Secret"]

    def test_no_secret_volume_without_a_secret(self, render: Render) -> None:
        """Without secrets.existingSecret no secret volume is mounted (the pod can start)."""
        sts = find(render(MINIMAL), "StatefulSet")
        assert "secrets" not in {v["name"] for v in pod_spec(sts)["volumes"]}


@pytest.mark.tool
class TestConfig:
    def test_config_and_rules_mount_where_the_daemon_reads_them(self, render: Render) -> None:
        """config.yaml and the default rules land at /etc/watchdog/{config.yaml,rules/}."""
        manifests = render(DEFAULT)
        sts = find(manifests, "StatefulSet")
        mounts = {m["name"]: m["mountPath"] for m in container(sts)["volumeMounts"]}
        assert mounts["config"] == "/etc/watchdog"
        assert container(sts)["args"] == ["run", "--config", "/etc/watchdog/config.yaml"]
        items = {v["name"]: v for v in pod_spec(sts)["volumes"]}["config"]["configMap"]["items"]
        paths = {i["key"]: i["path"] for i in items}
        assert paths["config.yaml"] == "config.yaml"
        assert paths["rules-default.yaml"] == "rules/default.yaml"
        assert paths["rules-team-extra.yaml"] == "rules/team-extra.yaml"
        data = find(manifests, "ConfigMap")["data"]
        assert set(paths) <= set(data)
        config = yaml.safe_load(data["config.yaml"])
        assert config["targets"][0]["name"] == "web"
        # every mounted pack is loaded: the config lists them, the default (flowchart) first
        assert config["rules"] == [
            "/etc/watchdog/rules/default.yaml",
            "/etc/watchdog/rules/team-extra.yaml",
        ]

    def test_configmap_ships_the_repo_default_rules(self, render: Render) -> None:
        """The rules in the ConfigMap are exactly the repo's rules/default.yaml."""
        data = find(render(DEFAULT), "ConfigMap")["data"]
        repo_rules = (ROOT / "rules" / "default.yaml").read_text()
        assert yaml.safe_load(data["rules-default.yaml"]) == yaml.safe_load(repo_rules)

    def test_chart_copy_of_rules_matches_the_repo(self) -> None:
        """helm/watchdog/files/rules/default.yaml is byte-identical to rules/default.yaml."""
        chart_copy = (CHART / "files" / "rules" / "default.yaml").read_text()
        assert chart_copy == (ROOT / "rules" / "default.yaml").read_text()

    def test_default_rules_can_be_left_out(self, render: Render) -> None:
        """rules.includeDefault=false drops the default pack from the ConfigMap and the mount."""
        manifests = render(DEFAULT, set_=("rules.includeDefault=false",))
        data = find(manifests, "ConfigMap")["data"]
        assert "rules-default.yaml" not in data
        assert yaml.safe_load(data["config.yaml"])["rules"] == [
            "/etc/watchdog/rules/team-extra.yaml"
        ]

    def test_no_packs_leaves_the_built_in_default(self, render: Render) -> None:
        """Without default or extra packs the config names none (the built-in pack applies)."""
        manifests = render(MINIMAL, set_=("rules.includeDefault=false",))
        assert "rules" not in yaml.safe_load(find(manifests, "ConfigMap")["data"]["config.yaml"])

    def test_config_rules_is_refused(self, helm: Helm, tmp_path: Path) -> None:
        """`config.rules` would point at files the chart does not mount: refused, naming
        rules.files instead."""
        other = values_file(tmp_path, {"config": {**ONE_TARGET, "rules": "/x/rules.yaml"}})
        result = helm("template", "wd", str(CHART), "--values", str(other))
        assert result.returncode != 0
        assert "remove config.rules and put extra packs in rules.files" in result.stderr

    def test_checksum_changes_with_config(self, render: Render, tmp_path: Path) -> None:
        """Changing the config changes the pod's checksum/config annotation (pods restart)."""
        other = values_file(tmp_path, {"config": ONE_TARGET})
        assert checksum(render(DEFAULT)) != checksum(render(DEFAULT, other))

    def test_checksum_changes_with_rules(self, render: Render, tmp_path: Path) -> None:
        """Changing a rule pack changes the checksum too (the daemon reads rules at start)."""
        other = values_file(tmp_path, {"rules": {"files": {"team-extra.yaml": "version: 2\n"}}})
        assert checksum(render(DEFAULT)) != checksum(render(DEFAULT, other))

    def test_checksum_ignores_unrelated_values(self, render: Render, tmp_path: Path) -> None:
        """Changing resources does not change the config checksum."""
        other = values_file(tmp_path, {"resources": {"requests": {"cpu": "1"}}})
        assert checksum(render(DEFAULT)) == checksum(render(DEFAULT, other))
        assert len(checksum(render(DEFAULT))) == 64


@pytest.mark.tool
class TestHighAvailability:
    def test_ha_renders_a_deployment_not_a_statefulset(self, render: Render) -> None:
        """HA mode is a Deployment with ha.replicas pods and no SQLite claim."""
        manifests = render(HA)
        assert not [m for m in manifests if m["kind"] == "StatefulSet"]
        deployment = find(manifests, "Deployment")
        assert deployment["spec"]["replicas"] == 3
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        assert "emptyDir" in volumes["data"]

    def test_dsn_comes_from_the_secret(self, render: Render) -> None:
        """WATCHDOG_STORE__URL (store.url, as the settings nest with "__") is read from the
        named Secret key, never inlined."""
        env = {e["name"]: e for e in container(find(render(HA), "Deployment"))["env"]}
        assert "WATCHDOG_STORE_URL" not in env
        ref = env["WATCHDOG_STORE__URL"]
        assert "value" not in ref
        assert ref["valueFrom"]["secretKeyRef"] == {"name": "watchdog-store", "key": "store-url"}

    def test_config_requires_a_leader(self, render: Render, tmp_path: Path) -> None:
        """HA mode sets leader.required, even over the user's leader settings."""
        other = values_file(tmp_path, {"config": {**ONE_TARGET, "leader": {"required": False}}})
        for manifests in (render(HA), render(HA, other)):
            config = yaml.safe_load(find(manifests, "ConfigMap")["data"]["config.yaml"])
            assert config["leader"]["required"] is True

    def test_rollout_keeps_a_standby(self, render: Render) -> None:
        """A rollout never takes a replica down before its replacement is up."""
        strategy = find(render(HA), "Deployment")["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0

    def test_pdb_selects_the_pods(self, render: Render) -> None:
        """The PodDisruptionBudget selects exactly the workload's pods."""
        manifests = render(HA)
        pdb = find(manifests, "PodDisruptionBudget")
        labels = find(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_ha_without_dsn_secret_is_refused(self, helm: Helm) -> None:
        """HA mode without ha.store.existingSecret fails to render with a clear error."""
        result = helm(
            "template", "wd", str(CHART), "--values", str(MINIMAL), "--set", "ha.enabled=true"
        )
        assert result.returncode != 0
        assert "ha.enabled needs ha.store.existingSecret" in result.stderr
        assert "PostgreSQL DSN" in result.stderr


@pytest.mark.tool
class TestRenderedConfigIsAccepted:
    """The chart renders only configs the daemon accepts: each ci values file rendered, the
    pod laid out on disk (ConfigMap files, Secret mounts, env), and `watchdog check` run on
    what the pod would read."""

    @pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
    def test_watchdog_check_accepts_the_rendered_config(
        self, render: Render, tmp_path: Path, values: Path
    ) -> None:
        """`watchdog check` exits 0 on each rendered config, with every mounted pack."""
        pod = materialize(render(values), tmp_path, secret_keys=SECRET_KEYS)
        result = check(pod)
        assert result.returncode == 0, result.stderr
        assert "ok: config" in result.stdout
        packs = yaml.safe_load(pod.config.read_text()).get("rules", [])
        assert packs, "the chart mounts packs but the config loads none"
        assert f"rules {', '.join(packs)}: " in result.stdout

    def test_ha_replica_without_the_shared_store_refuses(
        self, render: Render, tmp_path: Path
    ) -> None:
        """Without the DSN variable an HA replica's config is rejected (leader.required),
        instead of every replica leading on its own SQLite file."""
        pod = materialize(render(HA), tmp_path, secret_keys=SECRET_KEYS)
        del pod.env["WATCHDOG_STORE__URL"]
        result = check(pod)
        assert result.returncode == 1
        assert "leader.required is true but store.url is a sqlite:// store" in result.stderr

    def test_extra_pack_clashing_with_the_default_is_rejected(
        self, render: Render, tmp_path: Path
    ) -> None:
        """A rules.files pack reusing a default rule name fails check, naming both files."""
        clash = (
            "version: 1\nrules:\n  - {name: system-down, signal: health_up, op: '==', "
            "threshold: 0, severity: P0}\n"
        )
        other = values_file(tmp_path, {"rules": {"files": {"team-extra.yaml": clash}}})
        pod = materialize(render(DEFAULT, other), tmp_path / "pod", secret_keys=SECRET_KEYS)
        result = check(pod)
        assert result.returncode == 1
        assert "team-extra.yaml:3: rule 'system-down'" in result.stderr
        assert "rules/default.yaml:" in result.stderr

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ({}, "at '/config': missing property 'targets'"),
            ({"targets": []}, "at '/config/targets': minItems"),
            ({"targets": [{"name": "web"}]}, "at '/config/targets/0': missing property 'sources'"),
            ({"targets": [{"name": "web", "sources": []}]}, "'/config/targets/0/sources'"),
        ],
    )
    def test_configs_the_daemon_rejects_do_not_render(
        self, helm: Helm, tmp_path: Path, config: dict[str, Any], message: str
    ) -> None:
        """No targets, or a target without sources, fails at install time naming the field."""
        values = values_file(tmp_path, {"config": config})
        result = helm("template", "wd", str(CHART), "--values", str(values))
        assert result.returncode != 0
        assert message in result.stderr


@pytest.mark.tool
class TestSchema:
    @pytest.mark.parametrize(
        ("setting", "field"),
        [
            ("ha.replicas=two", "replicas"),
            ("ha.replicas=1", "replicas"),
            ("port=80", "port"),
            ("image.pullPolicy=Sometimes", "pullPolicy"),
            ("replicas=2", "replicas"),
            ("securityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ],
    )
    def test_schema_rejects_bad_values(self, helm: Helm, setting: str, field: str) -> None:
        """values.schema.json rejects a bad value and names the field."""
        result = helm("template", "wd", str(CHART), "--values", str(HA), "--set", setting)
        assert result.returncode != 0
        assert field in result.stderr

    def test_schema_accepts_the_ci_values(self, helm: Helm) -> None:
        """The schema accepts both ci values files (the rejection above is not blanket)."""
        for values in CI_VALUES:
            result = helm("template", "wd", str(CHART), "--values", str(values))
            assert result.returncode == 0, result.stderr


@pytest.mark.tool
class TestMonitoring:
    def test_servicemonitor_scrapes_the_service(self, render: Render) -> None:
        """The ServiceMonitor selects the Service and scrapes its http port at /metrics."""
        manifests = render(DEFAULT)
        monitor = find(manifests, "ServiceMonitor")
        service = find(manifests, "Service")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "http"
        assert endpoint["path"] == "/metrics"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    def test_monitoring_objects_are_opt_in(self, render: Render) -> None:
        """Without the flags no ServiceMonitor or PrometheusRule is rendered (no CRDs needed)."""
        kinds = {m["kind"] for m in render(MINIMAL)}
        assert not kinds & {"ServiceMonitor", "PrometheusRule"}

    def test_prometheusrule_carries_the_required_alerts(self, render: Render) -> None:
        """The PrometheusRule has every alert the watchdog is watched with."""
        rule = find(render(HA), "PrometheusRule")
        names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        assert names >= {
            "WatchdogDown",
            "WatchdogBlind",
            "WatchdogRollbackFailed",
            "WatchdogDeadMansSwitch",
            "WatchdogNotLeaderAnywhere",
        }

    def test_prometheusrule_targets_this_release_job(self, render: Render) -> None:
        """Job matchers point at the release's Service (the ServiceMonitor's job label)."""
        rule = find(render(HA), "PrometheusRule")
        exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
        assert any('job="wd-watchdog"' in e for e in exprs)
        assert not any('job="watchdog"' in e for e in exprs)

    def test_prometheusrule_is_the_deploy_alert_file(self, render: Render) -> None:
        """Apart from the job name, the chart's alerts equal deploy/prometheus's, field by field."""
        rule = find(render(HA), "PrometheusRule")
        rendered = yaml.safe_dump(rule["spec"]["groups"]).replace(
            'job="wd-watchdog"', 'job="watchdog"'
        )
        deploy = yaml.safe_load((DEPLOY / "prometheus" / "watchdog-alerts.yaml").read_text())
        assert yaml.safe_load(rendered) == deploy["groups"]
        chart_copy = (CHART / "files" / "watchdog-alerts.yaml").read_text()
        assert chart_copy == (DEPLOY / "prometheus" / "watchdog-alerts.yaml").read_text()

    def test_rendered_rules_pass_promtool(self, render: Render, tmp_path: Path) -> None:
        """The rendered PrometheusRule's groups are valid Prometheus rules to the real promtool."""
        promtool = require_tool("PROMTOOL", "promtool")
        rule = find(render(HA), "PrometheusRule")
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = run([promtool, "check", "rules", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tool
class TestHelmTestHook:
    def test_hook_pod_checks_readyz_with_python(self, render: Render) -> None:
        """The `helm test` pod runs the watchdog image's python against the Service's /readyz."""
        manifests = render(DEFAULT)
        pods = [m for m in manifests if m["kind"] == "Pod"]
        (pod,) = pods
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        (test_container,) = pod["spec"]["containers"]
        assert test_container["command"][0] == "python"
        assert test_container["command"][-1] == "http://wd-watchdog.mon.svc:8080/readyz"
        workload = find(manifests, "StatefulSet")
        assert test_container["image"] == container(workload)["image"]
        assert pod["spec"]["restartPolicy"] == "Never"
        assert test_container["securityContext"]["readOnlyRootFilesystem"] is True

    def test_hook_script_compiles(self, render: Render) -> None:
        """The inline python the hook runs is valid python."""
        (pod,) = [m for m in render(DEFAULT) if m["kind"] == "Pod"]
        compile(pod["spec"]["containers"][0]["command"][2], "<helm-test>", "exec")
