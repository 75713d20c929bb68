"""Static checks of deploy/kubernetes: what a reviewer of Slipway's own manifests would
look for, checked on every render (the base and each overlay).

- every object validates against the Kubernetes schema (kubernetes-validate, strict: an
  unknown or misspelt field is an error) of the oldest Kubernetes version Slipway supports;
- every namespaced object names its namespace (no kustomize ``namespace:``, which would
  also move the RoleBindings that must live in argocd and the environment namespaces);
- every container: requests for CPU and memory, a memory limit, a pinned image (a tag
  other than latest, or a digest), no privilege escalation, a read-only root filesystem,
  all capabilities dropped; every pod: non-root with a fixed UID, RuntimeDefault seccomp;
- web: liveness and startup on /healthz, readiness on /readyz, an HPA owning its replica
  count, a PodDisruptionBudget, a Service selecting it;
- RBAC: exactly get/list/watch on Argo CD applications, apps deployments and core pods:
  nothing else, no wildcard, no secrets, no cluster-wide binding, bound only to
  Slipway's service account; only the worker mounts the token;
- a default-deny NetworkPolicy, and web open on its HTTP port only;
- beat: one replica, never two side by side; worker: a shutdown grace longer than the
  longest task.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from apps.gitops.validate import KUBERNETES_VERSION
from apps.gitops.workloads import SERVING_KINDS
from tests.deploy.kustomize import containers, object_id, pod_spec, render, split_image

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
RENDERS = {
    "base": KUBE / "base",
    **{
        f"overlay:{p.name}": p
        for p in sorted((KUBE / "overlays").iterdir())
        if (p / "kustomization.yaml").is_file()
    },
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# What the code reads, and nothing more: Argo CD Applications (apps/gitops/argo.py), pods
# (cost), Jobs (batch runs) and every serving kind whose status is read
# (apps/gitops/workloads.py SERVING_KINDS, so a new kind there fails here until granted).
READ = ("get", "list", "watch")
ALLOWED_RULES = {
    (group, resource, verb)
    for group, resource in [
        ("argoproj.io", "applications"),
        ("", "pods"),
        ("batch", "jobs"),
        *((group, plural) for group, _version, plural in SERVING_KINDS.values()),
    ]
    for verb in READ
}
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "slipway", "namespace": "slipway"}


@pytest.fixture(scope="module", params=sorted(RENDERS))
def rendered(request) -> list[dict]:
    return render(RENDERS[request.param])


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def component(objects: list[dict], kind: str, name: str) -> dict:
    return one(objects, kind, f"slipway-{name}")


def test_there_is_an_example_overlay():
    assert "overlay:example" in RENDERS


def test_every_object_is_valid_for_kubernetes(rendered):
    problems = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{object_id(obj)}: {exc.message} at {list(exc.path)}")
    assert not problems, "\n".join(problems)


def test_namespaces_are_explicit_and_kustomize_does_not_move_them():
    for folder in RENDERS.values():
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert "namespace" not in kustomization, folder


def test_every_namespaced_object_names_its_namespace(rendered):
    for obj in rendered:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert namespace is None, object_id(obj)
        else:
            assert namespace, f"{object_id(obj)} has no namespace"


def test_no_secret_is_committed(rendered):
    assert not by_kind(rendered, "Secret")


def workloads(objects: list[dict]) -> list[dict]:
    return [obj for obj in objects if pod_spec(obj) is not None]


def test_every_container_has_resources_and_a_pinned_image(rendered):
    assert workloads(rendered)
    for obj in workloads(rendered):
        for container in containers(obj):
            where = f"{object_id(obj)} container {container['name']}"
            resources = container.get("resources", {})
            requests = resources.get("requests", {})
            assert {"cpu", "memory"} <= set(requests), f"{where}: requests {requests}"
            assert "memory" in resources.get("limits", {}), f"{where}: no memory limit"
            _name, tag, digest = split_image(container["image"])
            assert digest or (tag and tag != "latest"), f"{where}: image {container['image']}"


def test_every_pod_runs_unprivileged(rendered):
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, object_id(obj)
        assert pod.get("runAsUser", 0) > 0, object_id(obj)
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", object_id(obj)
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), object_id(obj)
        for container in containers(obj):
            context = container.get("securityContext", {})
            where = f"{object_id(obj)} container {container['name']}"
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("privileged"), where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"


def test_web_probes_healthz_for_liveness_and_readyz_for_readiness(rendered):
    web = component(rendered, "Deployment", "web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    def path_of(probe: str) -> str:
        action = container[probe]["httpGet"]
        assert action["port"] in ports or action["port"] in ports.values()
        return action["path"]

    assert path_of("livenessProbe") == "/healthz"
    assert path_of("startupProbe") == "/healthz"
    assert path_of("readinessProbe").split("?")[0] == "/readyz"
    # The probe arrives with the pod's IP as Host; Django must accept it.
    env = {e["name"]: e for e in container["env"]}
    assert "$(POD_IP)" in env["ALLOWED_HOSTS"]["value"]
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_web_has_an_hpa_a_pdb_and_a_service(rendered):
    web = component(rendered, "Deployment", "web")
    assert "replicas" not in web["spec"], "the HPA owns the replica count"
    hpa = component(rendered, "HorizontalPodAutoscaler", "web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "slipway-web",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    pdb = component(rendered, "PodDisruptionBudget", "web")
    service = component(rendered, "Service", "web")
    for selector in (pdb["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert selector.items() <= pod_labels.items()
    port_names = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_rbac_reads_what_the_code_reads_and_nothing_else(rendered):
    granted = set()
    for role in by_kind(rendered, "Role") + by_kind(rendered, "ClusterRole"):
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb), role["metadata"]["name"]
                        granted.add((group, resource, verb))
    assert granted == ALLOWED_RULES
    assert not by_kind(rendered, "ClusterRoleBinding"), "grants are per namespace"


def test_rbac_bindings_point_at_slipways_account_and_existing_roles(rendered):
    roles = {(r["kind"], r["metadata"]["name"], r["metadata"].get("namespace")) for r in rendered}
    bindings = by_kind(rendered, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} >= {"argocd", "staging", "prod"}
    for binding in bindings:
        assert binding["subjects"] == [SERVICE_ACCOUNT], binding["metadata"]
        ref = binding["roleRef"]
        namespace = binding["metadata"]["namespace"] if ref["kind"] == "Role" else None
        assert (ref["kind"], ref["name"], namespace) in roles, ref
    one(rendered, "ServiceAccount", "slipway")


def test_only_the_worker_mounts_the_service_account_token(rendered):
    account = one(rendered, "ServiceAccount", "slipway")
    assert account.get("automountServiceAccountToken") is False
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        assert spec["serviceAccountName"] == "slipway", object_id(obj)
        mounts = spec.get("automountServiceAccountToken", False)
        assert mounts is (obj["metadata"]["name"] == "slipway-worker"), object_id(obj)


def test_network_policies_deny_by_default_and_open_only_web_http(rendered):
    policies = by_kind(rendered, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"
    web_labels = component(rendered, "Deployment", "web")["spec"]["template"]["metadata"]["labels"]
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            selected = policy["spec"]["podSelector"].get("matchLabels", {})
            assert selected and selected.items() <= web_labels.items(), policy["metadata"]
            assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
            assert rule["from"], "ingress from anywhere"


def test_beat_never_runs_twice_and_the_worker_outlives_its_longest_task(rendered):
    beat = component(rendered, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    worker = component(rendered, "Deployment", "worker")
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.CELERY_TASK_TIME_LIMIT


def test_pods_get_their_configuration_from_objects_that_exist(rendered):
    config_maps = {c["metadata"]["name"]: c for c in by_kind(rendered, "ConfigMap")}
    for obj in workloads(rendered):
        for container in containers(obj):
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    config = config_maps[source["configMapRef"]["name"]]
                    names |= set(config["data"])
                else:
                    assert source["secretRef"]["name"] == "slipway-secrets"
            for env in container.get("env", []):
                for ref in _references(env.get("value", "")):
                    assert ref in names, f"{object_id(obj)}: $({ref}) is not defined"


def _references(value: str) -> list[str]:
    import re

    return re.findall(r"\$\(([A-Z0-9_]+)\)", value)


def test_migrations_run_once_before_the_new_pods(rendered):
    job = one(rendered, "Job", "slipway-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert int(annotations["argocd.argoproj.io/sync-wave"]) < 0
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["migrate", "--noinput"]
    # What the Job needs exists in an earlier wave.
    for kind, name in (("ConfigMap", "slipway-config"), ("ServiceAccount", "slipway")):
        wave = one(rendered, kind, name)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        assert int(wave) < int(annotations["argocd.argoproj.io/sync-wave"])


def test_the_example_overlay_changes_what_it_says():
    objects = render(RENDERS["overlay:example"])
    config = one(objects, "ConfigMap", "slipway-config")["data"]
    assert config["SLIPWAY_PUBLIC_HOST"] == "slipway.platform.example.com"
    ingress = one(objects, "Ingress", "slipway")
    assert ingress["spec"]["rules"][0]["host"] == config["SLIPWAY_PUBLIC_HOST"]
    assert config["CSRF_TRUSTED_ORIGINS"] == f"https://{config['SLIPWAY_PUBLIC_HOST']}"
    assert {b["metadata"]["namespace"] for b in by_kind(objects, "RoleBinding")} >= {"canary"}
