"""Tests of the tandem-operator chart, the CRD and the examples. No network, no cluster.

- The chart is rendered and linted (strict) by Helm's own engine, in-process, through PyPI
  helm-python-sdk, for the default values and several non-default value sets.
- Every rendered manifest, the CRD and the examples' built-in objects pass the official
  Kubernetes 1.33 schemas: `kubernetes-validate --strict -k 1.33`.
- The examples are custom resources, which kubernetes-validate cannot check: they are validated
  against the CRD's openAPIV3Schema with `jsonschema`, strictly (unknown fields fail, as
  `kubectl apply`'s strict field validation does). The schema's CEL rules are checked by the
  Rust side (operator/tests/chart.rs, kube's CEL evaluator).
- The RBAC objects grant exactly the API calls the operator makes: the list comes from the
  operator crate (api_calls::API_CALLS, enforced by its mock API server), handed over by
  operator/tests/chart.rs in TANDEM_API_CALLS.

Run them all with `cargo test -p tandem-operator --test chart` (or `cargo test --workspace`).
A missing tool skips, unless TANDEM_REQUIRE_REAL_DEPS=1.
"""

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REQUIRED = os.environ.get("TANDEM_REQUIRE_REAL_DEPS") == "1"


def need(module):
    """Imports a test dependency; skips when it is missing unless dependencies are required."""
    try:
        return __import__(module)
    except ImportError as err:
        if REQUIRED:
            raise
        pytest.skip(f"{module} is not installed ({err})", allow_module_level=True)


helm = need("helm_python")
jsonschema = need("jsonschema")

CHART = Path(__file__).resolve().parent.parent
REPO = CHART.parent.parent
CRD_FILE = CHART / "crds" / "redisreplicasets.tandem.dev.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
RELEASE = "tandem-operator"
NAMESPACE = "tandem-system"
FULLNAME = "tandem-operator"
KUBE = "1.33"

# Labels the operator puts on every database pod (operator/src/resources/mod.rs).
SERVER_POD_LABELS = {
    "app.kubernetes.io/name": "tandem-server",
    "app.kubernetes.io/managed-by": "tandem-operator",
}

SCENARIOS = {
    "default": {},
    "namespaced": {"watchNamespace": "databases"},
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "databaseNamespaces": ["shop", "cache"],
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        }
    },
    "service-monitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}
    },
    "crd-template": {"crds": {"enabled": True}},
    "crd-template-no-keep": {"crds": {"enabled": True, "keep": False}},
    "single-replica": {
        "replicaCount": 1,
        "leaderElection": {"enabled": False},
        "logLevel": "info,tandem_operator=debug",
        "logFormat": "json",
        "image": {"repository": "registry.example/tandem-operator", "tag": "dev", "pullPolicy": "Always"},
        "serverImage": {"repository": "registry.example/tandem-server", "tag": "dev"},
        "serviceAccount": {"create": True, "name": "tandem", "annotations": {"example.com/role": "x"}},
    },
    "everything": {
        "watchNamespace": "databases",
        "crds": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "imagePullSecrets": [{"name": "registry"}],
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "db"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "system-cluster-critical",
    },
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}, "noMasterFor": "2m"},
            "dashboard": {"enabled": True, "namespace": "monitoring"},
        }
    },
    "knobs": {
        "image": {
            "repository": "registry.example/tandem-operator",
            "tag": "ignored",
            "digest": "sha256:" + "a" * 64,
            "pullPolicy": "IfNotPresent",
        },
        "serverImage": {"repository": "registry.example/tandem-server", "tag": "", "digest": "sha256:" + "b" * 64},
        "extraArgs": ["--identity=operator-a"],
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "tandem-operator"}},
            }
        ],
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
        "livenessProbe": {"periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 5, "initialDelaySeconds": 5},
        "readinessProbe": {"periodSeconds": 7, "timeoutSeconds": 2, "failureThreshold": 2},
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
                "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
            }
        },
    },
}


def render(values):
    """Renders the chart like `helm template` (templates only, not crds/): list of objects."""
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values):
    return notes_of(helm.Chart.load(str(CHART)), values)


def notes_of(chart, values):
    manifests = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind):
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kubernetes_validate(path):
    """`kubernetes-validate --strict -k 1.33 FILE`: must pass and must have found schemas."""
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "-k", KUBE, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"kubernetes-validate rejected {path}:\n{output}"
    # A missing schema is only a warning for the tool; for us it means nothing was checked.
    assert "Couldn't find schema" not in output, output


@pytest.fixture(scope="session", autouse=True)
def kubernetes_validate_installed():
    try:
        subprocess.run(["kubernetes-validate", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        if REQUIRED:
            raise
        pytest.skip("kubernetes-validate is not installed")


# --- rendering, lint, Kubernetes schemas -------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_is_clean_in_strict_mode(scenario):
    report = helm.lint(
        str(CHART), SCENARIOS[scenario], strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE}.0"
    )
    assert report["errors"] == [], report
    # The one finding Helm always makes without an icon is informational (severity 1).
    findings = [m for m in report["messages"] if m["error"] != "icon is recommended"]
    assert findings == [], findings


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_manifests_pass_kubernetes_schemas(scenario, tmp_path):
    objects = render(SCENARIOS[scenario])
    # ServiceMonitor and PodMonitor are Prometheus Operator custom resources: no official
    # schema exists for them; test_service_monitor_scrapes_the_metrics_service and
    # test_pod_monitor_scrapes_the_database_exporters check them.
    # The same for PrometheusRule: test_prometheus_rule_alerts_on_series_the_operator_exports
    # checks it against the rule-file schema.
    checked = [o for o in objects if o["kind"] not in ("ServiceMonitor", "PodMonitor", "PrometheusRule")]
    path = tmp_path / f"{scenario}.yaml"
    path.write_text(yaml.safe_dump_all(checked))
    kubernetes_validate(path)


def test_crd_passes_kubernetes_schemas():
    kubernetes_validate(CRD_FILE)


def test_bad_values_are_rejected_by_the_schema():
    chart = helm.Chart.load(str(CHART))
    for bad in [
        {"replicaCount": 0},
        {"replicaz": 2},
        {"image": {"pullPolicy": "Sometimes"}},
        {"watchNamespace": "Not_A_Namespace"},
        {"logFormat": "xml"},
        {"metrics": {"port": 0}},
        {"networkPolicy": {"surprise": True}},
        {"leaderElection": {"enabled": False}},  # two replicas without an election
        {"global": "not a map"},
    ]:
        with pytest.raises(helm.HelmValuesError):
            chart.render(bad, name=RELEASE, namespace=NAMESPACE)


def test_renders_as_a_dependency_of_an_umbrella_chart_with_global_values(tmp_path):
    """Helm hands a subchart the umbrella's `global` values (an empty map at least), so the
    values schema must accept the key or the chart cannot be a dependency at all."""
    umbrella = tmp_path / "umbrella"
    shutil.copytree(
        CHART,
        umbrella / "charts" / "tandem-operator",
        ignore=shutil.ignore_patterns("tests", "__pycache__"),
    )
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    (umbrella / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "umbrella",
                "version": "0.1.0",
                "dependencies": [{"name": "tandem-operator", "version": version}],
            }
        )
    )
    for values in [{}, {"global": {"imageRegistry": "registry.example", "labels": {"team": "db"}}}]:
        manifests = helm.Chart.load(str(umbrella)).render(
            copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, is_install=True
        )
        objects = [
            doc
            for path, text in sorted(manifests.items())
            if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
        assert one(objects, "Deployment")["metadata"]["name"] == FULLNAME, values


def test_every_value_is_commented_above_it():
    # Keys under these hold Kubernetes objects given as data; the key itself is commented.
    data_parents = {"resources", "podSecurityContext", "securityContext"}
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents = []
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w./-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        parents = [(d, k) for d, k in parents if d < indent]
        in_data = any(k in data_parents for _, k in parents)
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if not in_data and not previous.strip().startswith("#"):
            undocumented.append(".".join([k for _, k in parents] + [match.group(2)]))
        parents.append((indent, match.group(2)))
    assert undocumented == [], f"values without a comment above them: {undocumented}"


# --- the Deployment ---------------------------------------------------------------------


def operator_flags():
    """The long flags `tandem-operator run` accepts, from its --help."""
    binary = os.environ.get("TANDEM_OPERATOR_BIN")
    if not binary:
        if REQUIRED:
            pytest.fail("TANDEM_OPERATOR_BIN is not set: run through cargo test -p tandem-operator --test chart")
        pytest.skip("TANDEM_OPERATOR_BIN is not set (run through cargo test -p tandem-operator --test chart)")
    text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--([a-z][a-z-]*)", text))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_deployment_runs_the_operator_restricted(scenario):
    values = SCENARIOS[scenario]
    objects = render(values)
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"]

    args = container["args"]
    assert args[0] == "run"
    flags = dict(a[2:].split("=", 1) for a in args[1:])
    known = operator_flags()
    assert set(flags) <= known, f"flags tandem-operator run does not take: {set(flags) - known}"

    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

    def reference(image, repository):
        if image.get("digest"):
            return f"{image['repository']}@{image['digest']}"
        return f"{image.get('repository', repository)}:{image.get('tag') or app_version}"

    assert flags["server-image"] == reference(values.get("serverImage", {}), "ghcr.io/tandem-dev/tandem-server")
    assert container["image"] == reference(values.get("image", {}), "ghcr.io/tandem-dev/tandem-operator")
    assert flags.get("namespace") == (values.get("watchNamespace") or None)
    election = values.get("leaderElection", {}).get("enabled", True)
    assert flags["leader-election"] == ("on" if election else "off")
    if election:
        assert flags["lease-namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == values.get("replicaCount", 2)
    env = {e["name"]: e for e in container["env"]}
    assert env["RUST_LOG"]["value"] == values.get("logLevel", "info")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    port = container["ports"][0]
    assert port["name"] == "metrics" and flags["metrics-addr"].endswith(f":{port['containerPort']}")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    account = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_app_version_is_the_workspace_version_and_the_image_version():
    workspace = (REPO / "Cargo.toml").read_text()
    version = re.search(r'\[workspace\.package\][^\[]*?version = "([^"]+)"', workspace).group(1)
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == version
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.M).group(1) == version
    targets = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)
    assert {"server", "operator"} <= set(targets), targets


# --- RBAC -------------------------------------------------------------------------------


def api_calls():
    raw = os.environ.get("TANDEM_API_CALLS")
    if not raw:
        if REQUIRED:
            pytest.fail("TANDEM_API_CALLS is not set: run through cargo test -p tandem-operator --test chart")
        pytest.skip("TANDEM_API_CALLS is not set (run through cargo test -p tandem-operator --test chart)")
    calls = json.loads(raw)
    assert len(calls) > 10, calls
    return calls


def grants(rule, verb, group, resource, name=None):
    return (
        (group in rule["apiGroups"] or "*" in rule["apiGroups"])
        and (resource in rule["resources"] or "*" in rule["resources"])
        and (verb in rule["verbs"] or "*" in rule["verbs"])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


class Permissions:
    """What the operator's ServiceAccount may do, from the rendered RBAC objects."""

    def __init__(self, objects):
        account = one(objects, "ServiceAccount")["metadata"]
        subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
        self.cluster = []  # rules valid in every namespace and at cluster scope
        self.namespaced = {}  # namespace -> rules valid there
        for binding in objects:
            if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding") or subject not in binding["subjects"]:
                continue
            ref = binding["roleRef"]
            namespace = binding["metadata"].get("namespace")
            role_ns = None if ref["kind"] == "ClusterRole" else namespace
            role = roles.get((ref["kind"], role_ns, ref["name"]))
            assert role is not None, f"{binding['metadata']['name']} binds a role the chart does not create"
            if binding["kind"] == "ClusterRoleBinding":
                self.cluster.extend(role["rules"])
            else:
                self.namespaced.setdefault(namespace, []).extend(role["rules"])

    def allowed(self, namespace, verb, group, resource, name=None):
        rules = self.cluster if namespace is None else self.cluster + self.namespaced.get(namespace, [])
        return any(grants(r, verb, group, resource, name) for r in rules)

    def all_rules(self):
        return self.cluster + [r for rules in self.namespaced.values() for r in rules]


@pytest.mark.parametrize("scenario", ["default", "namespaced", "single-replica", "everything"])
def test_rbac_grants_every_api_call_the_operator_makes(scenario):
    values = SCENARIOS[scenario]
    objects = render(values)
    permissions = Permissions(objects)
    watch = values.get("watchNamespace")
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    lease = next((a.split("=", 1)[1] for a in args if a.startswith("--lease-name=")), None)
    election = lease is not None
    missing = []
    for call in api_calls():
        verb, group, resource = call["verb"], call["group"], call["resource"]
        if call["scope"] == "own":
            if not election:
                continue
            ok = permissions.allowed(NAMESPACE, verb, group, resource, name=lease)
        elif watch:
            ok = permissions.allowed(watch, verb, group, resource)
        else:
            # Api::all: lists and watches span the cluster, so a ClusterRoleBinding is needed.
            ok = permissions.allowed(None, verb, group, resource)
        if not ok:
            missing.append(call)
    assert missing == [], f"the chart's RBAC does not allow: {missing}"


@pytest.mark.parametrize("scenario", ["default", "namespaced", "single-replica", "everything"])
def test_rbac_grants_nothing_else(scenario):
    calls = {(c["verb"], c["group"], c["resource"]) for c in api_calls()}
    permissions = Permissions(render(SCENARIOS[scenario]))
    extra = []
    for rule in permissions.all_rules():
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if (verb, group, resource) not in calls:
                        extra.append((verb, group, resource))
    assert extra == [], f"the chart grants calls the operator never makes: {extra}"


def test_one_namespace_means_no_cluster_wide_rbac():
    objects = render(SCENARIOS["namespaced"])
    assert of_kind(objects, "ClusterRole") == [] and of_kind(objects, "ClusterRoleBinding") == []
    role = next(o for o in of_kind(objects, "Role") if o["metadata"]["namespace"] == "databases")
    binding = next(o for o in of_kind(objects, "RoleBinding") if o["metadata"]["namespace"] == "databases")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_rbac_off_renders_no_rbac():
    objects = render({"rbac": {"create": False}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io")]


# --- metrics, NetworkPolicy, CRD template, NOTES ----------------------------------------


def test_service_monitor_scrapes_the_metrics_service():
    objects = render(SCENARIOS["service-monitor"])
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    assert of_kind(render({}), "ServiceMonitor") == []
    with pytest.raises(helm.HelmRenderError):
        render({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}})


def test_pod_monitor_scrapes_the_database_exporters():
    assert of_kind(render({}), "PodMonitor") == []
    values = {
        "networkPolicy": {"databaseNamespaces": ["cache", "shop"]},
        "metrics": {"podMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    }
    monitors = of_kind(render(values), "PodMonitor")
    assert sorted(m["metadata"]["namespace"] for m in monitors) == ["cache", "shop"]
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["selector"]["matchLabels"] == SERVER_POD_LABELS
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        # The operator names the sidecar's port so (operator/src/resources/exporter.rs).
        assert endpoint["port"] == "metrics"
        assert endpoint["path"] == "/metrics"


def test_operator_knobs_land_in_the_deployment_pdb_and_service_monitor():
    values = SCENARIOS["knobs"]
    objects = render(values)
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][-1] == "--identity=operator-a", "extraArgs come after the chart's"
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"} in container["env"]
    assert container["volumeMounts"] == values["extraVolumeMounts"]
    assert pod["volumes"] == values["extraVolumes"]
    assert pod["topologySpreadConstraints"] == values["topologySpreadConstraints"]
    liveness = container["livenessProbe"]
    assert liveness["httpGet"]["path"] == "/healthz"
    assert (liveness["periodSeconds"], liveness["timeoutSeconds"], liveness["failureThreshold"]) == (20, 3, 5)
    assert liveness["initialDelaySeconds"] == 5
    assert container["readinessProbe"]["periodSeconds"] == 7
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "50%"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["relabelings"] == values["metrics"]["serviceMonitor"]["relabelings"]
    assert endpoint["metricRelabelings"] == values["metrics"]["serviceMonitor"]["metricRelabelings"]
    # Defaults: a PDB that lets a drain take one operator pod at a time, no extra volumes.
    defaults = render({})
    assert one(defaults, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "volumes" not in one(defaults, "Deployment")["spec"]["template"]["spec"]
    assert of_kind(render({"podDisruptionBudget": {"enabled": False, "maxUnavailable": 1}}), "PodDisruptionBudget") == []


@pytest.mark.parametrize(
    "bad",
    [
        {"image": {"repository": "r", "tag": "", "digest": "latest", "pullPolicy": "Always"}},
        {"extraArgs": ["run"]},
        {"extraVolumeMounts": [{"name": "ca"}]},
        {"livenessProbe": {"periodSeconds": 0, "timeoutSeconds": 1, "failureThreshold": 3}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "half"}},
    ],
)
def test_bad_operator_knobs_are_refused_by_the_values_schema(bad):
    with pytest.raises(helm.HelmValuesError):
        render(bad)


def test_the_packaged_chart_installs_and_its_notes_need_no_repository(tmp_path):
    """`helm package`, then an install from the .tgz (Helm's client-side dry run, the real
    install path without a cluster): what users of a chart repository get. The notes must
    not send them to files of this repository, which the package does not have."""
    archive = Path(helm.package(str(CHART), destination=str(tmp_path)))
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    assert archive.name == f"tandem-operator-{version}.tgz"
    packaged = helm.Chart.load(str(archive))
    (crd,) = packaged.crds
    assert crd["data"] == CRD_FILE.read_text(), "the package carries the CRD"
    kubeconfig = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
            "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
            "current-context": "none",
            "users": [{"name": "none", "user": {}}],
        }
    )
    config = helm.Config(storage_driver="memory", kubeconfig_content=kubeconfig, namespace=NAMESPACE)
    release = config.install(str(archive), RELEASE, {}, namespace=NAMESPACE, dry_run="client")
    fields = release if isinstance(release, dict) else vars(release)
    manifest = fields["manifest"]
    kinds = [doc["kind"] for doc in yaml.safe_load_all(manifest) if doc]
    assert "Deployment" in kinds and "PodDisruptionBudget" in kinds, kinds
    rendered = tmp_path / "packaged.yaml"
    rendered.write_text(manifest)
    kubernetes_validate(rendered)
    text = notes_of(packaged, {})
    assert "charts/tandem-operator" not in text, text
    assert "helm show crds" in text and "wait --for=condition=Ready rrs/cache" in text
    assert "https://github.com/tandem-dev/tandem/tree/main/examples" in text


# Every series the operator exports per set (operator/src/set_metrics.rs, docs/metrics.md).
SET_SERIES = {
    "tandem_set_phase",
    "tandem_set_ready_pods",
    "tandem_set_master_offset_bytes",
    "tandem_set_failovers_total",
    "tandem_set_switchovers_total",
    "tandem_set_failover_bytes_at_risk",
    "tandem_set_master_full_syncs",
    "tandem_set_full_syncs_completed_total",
    "tandem_set_sync_loop_adjustments",
    "tandem_replica_lag_seconds",
    "tandem_replica_last_full_sync_duration_seconds",
    "tandem_replica_sync_state",
}


def series_in(expr):
    return set(re.findall(r"\b(tandem_(?:set|replica)_[a-z_]+)", expr))


def test_the_documented_series_are_the_exported_ones():
    documented = set(re.findall(r"`(tandem_(?:set|replica)_[a-z_]+)", (REPO / "docs" / "metrics.md").read_text()))
    source = (REPO / "operator" / "src" / "set_metrics.rs").read_text()
    exported = {f"tandem_{n}" for n in re.findall(r'"((?:set|replica)_[a-z_]+)",', source)}
    exported = {n + "_total" if n.endswith(("failovers", "switchovers", "completed")) else n for n in exported}
    assert exported == SET_SERIES
    assert documented == SET_SERIES


# The rule-file format (Prometheus' rule_files, as a PrometheusRule's spec carries it).
RULES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["alert", "expr"],
                            "properties": {
                                "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        }
    },
}


def test_prometheus_rule_alerts_on_series_the_operator_exports():
    objects = render(SCENARIOS["monitoring"])
    rule = one(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    jsonschema.validate(rule["spec"], RULES_SCHEMA)
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "TandemSetNoMaster",
        "TandemReplicaNotOnline",
        "TandemSyncLoop",
        "TandemFailedOver",
        "TandemSetDegraded",
    }
    assert alerts["TandemSetNoMaster"]["for"] == "2m"
    assert "[10m]" in alerts["TandemReplicaNotOnline"]["expr"]
    for name, r in alerts.items():
        used = series_in(r["expr"])
        assert used and used <= SET_SERIES, (name, used)
        # Prometheus templates survive Helm's rendering.
        assert "{{ $labels." in r["annotations"]["summary"], r
    assert of_kind(render({}), "PrometheusRule") == []


def test_dashboard_is_grafana_json_on_the_exported_series():
    objects = render(SCENARIOS["monitoring"])
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["tandem-sets.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "tandem-sets.json").read_text())
    # What Grafana needs to import it: a title, a uid, a schema version, panels with
    # positions and Prometheus targets, and the template variables they use.
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used = set()
    for p in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys(), p
        assert p["datasource"]["uid"] == "${datasource}"
        for target in p["targets"]:
            used |= series_in(target["expr"])
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), (p["title"], var)
    assert used == SET_SERIES - {"tandem_set_full_syncs_completed_total"}, used
    assert [o for o in render({}) if o["metadata"]["name"].endswith("-dashboard")] == []


def test_metrics_service_selects_the_operator_pods():
    objects = render({})
    service = one(objects, "Service")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_network_policies_admit_only_clients_peers_and_the_operator():
    assert of_kind(render({}), "NetworkPolicy") == []
    objects = render(SCENARIOS["network-policy"])
    operator_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policies = of_kind(objects, "NetworkPolicy")
    databases = [p for p in policies if p["spec"]["podSelector"]["matchLabels"] == SERVER_POD_LABELS]
    assert sorted(p["metadata"]["namespace"] for p in databases) == ["cache", "shop"]
    for policy in databases:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rule, scrape = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}, {"port": 26379, "protocol": "TCP"}]
        assert scrape["ports"] == [{"port": 9121, "protocol": "TCP"}]
        assert scrape["from"] == SCENARIOS["network-policy"]["networkPolicy"]["metricsFrom"]
        peers = rule["from"]
        assert {"podSelector": {"matchLabels": {"tandem.dev/client": "true"}}} in peers
        assert {"podSelector": {"matchLabels": SERVER_POD_LABELS}} in peers
        operator_peer = next(p for p in peers if "namespaceSelector" in p)
        assert operator_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
        assert operator_peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
        assert len(peers) == 3
    (operator,) = [p for p in policies if p not in databases]
    assert operator["metadata"]["namespace"] == NAMESPACE
    assert operator["spec"]["podSelector"]["matchLabels"].items() <= operator_labels.items()
    (rule,) = operator["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == SCENARIOS["network-policy"]["networkPolicy"]["metricsFrom"]
    # Without explicit namespaces: the watched namespace, else the release namespace.
    watched = render({"networkPolicy": {"enabled": True}, "watchNamespace": "databases"})
    assert {p["metadata"]["namespace"] for p in of_kind(watched, "NetworkPolicy")} == {"databases", NAMESPACE}


def test_crd_template_is_the_crds_folder_copy_kept_on_uninstall():
    assert of_kind(render({}), "CustomResourceDefinition") == []
    crd = yaml.safe_load(CRD_FILE.read_text())
    for scenario, keep in [("crd-template", True), ("crd-template-no-keep", False)]:
        rendered = one(render(SCENARIOS[scenario]), "CustomResourceDefinition")
        metadata = rendered.pop("metadata")
        assert rendered == {k: v for k, v in crd.items() if k != "metadata"}
        assert metadata["name"] == crd["metadata"]["name"]
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        annotations = metadata.get("annotations", {})
        assert (annotations.get("helm.sh/resource-policy") == "keep") is keep
    # Helm's crds/ folder carries the same file, installed on first install.
    (installed,) = helm.Chart.load(str(CHART)).crds
    assert installed["name"] == f"crds/{CRD_FILE.name}"
    assert installed["data"] == CRD_FILE.read_text()


def test_notes_tell_the_user_what_to_do_next():
    text = notes({})
    assert "kubectl apply" in text and "get rrs" in text and "condition=Ready" in text
    assert "crds.enabled=true" in text
    assert "tandem.dev/client=true" in notes(SCENARIOS["network-policy"])


# --- examples -----------------------------------------------------------------------------


def strict(schema):
    """The structural schema with unknown fields refused, as strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        if schema.get("x-kubernetes-int-or-string"):
            schema.pop("type", None)
            schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if schema.get("nullable"):
            kind = schema.pop("type", None)
            if kind:
                schema["type"] = [kind, "null"]
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schema():
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    # The API server validates these itself, not through the CRD's schema.
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    schema["properties"]["metadata"] = {"type": "object"}
    return crd, version, schema


def test_examples_match_the_crd_schema():
    assert len(EXAMPLES) >= 4, EXAMPLES
    crd, version, schema = crd_schema()
    api_version = f"{crd['spec']['group']}/{version['name']}"
    for path in EXAMPLES:
        (resource,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert resource["apiVersion"] == api_version and resource["kind"] == crd["spec"]["names"]["kind"], path
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", resource["metadata"]["name"]), path
        assert "namespace" not in resource["metadata"], f"{path}: let kubectl -n choose the namespace"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(resource), key=str)
        assert errors == [], f"{path.name}: " + "; ".join(e.message for e in errors)


def test_strict_schema_check_catches_mistakes():
    _, _, schema = crd_schema()
    validator = jsonschema.Draft7Validator(schema)
    base = yaml.safe_load(EXAMPLES[0].read_text())
    for patch in [
        {"replicaz": 3},
        {"replicas": "three"},
        {"replicas": 0},
        {"replication": {"mode": "Fast"}},
        {"persistence": {"enabled": True, "sise": "1Gi"}},
        {"datasetSizeHint": "20 gigabytes"},
    ]:
        resource = copy.deepcopy(base)
        resource["spec"].update(patch)
        assert list(validator.iter_errors(resource)), patch
