"""Lints, renders and validates the yunshu Helm chart; called by test.sh.

For each value set: `helm lint --strict`, a render as an install into
yunshu-system, Kubernetes schema validation of every manifest (strict: unknown
fields fail), and checks of what each value set must produce. Kinds
kubernetes-validate has no schema for (the Prometheus Operator's) are named
as skipped. Exits 1 on the first value set with a failure, after reporting all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from helm_python import Chart, HelmError, lint

KUBE_VERSION = "1.33"
NAMESPACE = "yunshu-system"
RELEASE = "yunshu"
# Kinds from CRDs kubernetes-validate cannot know.
UNKNOWN_OK = {"monitoring.coreos.com/v1"}

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL {msg}")


def check(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def validate(doc: dict[str, Any], origin: str) -> None:
    what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')} ({origin})"
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        print(f"  ok   {what}")
    except kubernetes_validate.SchemaNotFoundError:
        if doc.get("apiVersion") in UNKNOWN_OK:
            print(f"  SKIP {what}: kubernetes-validate has no schema for {doc['apiVersion']}")
        else:
            fail(f"{what}: no schema for {doc.get('apiVersion')}")
    except kubernetes_validate.ValidationError as e:
        fail(f"{what}: {e.message} at {'.'.join(str(p) for p in e.path)}")


def render(chart: Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__origin"] = path
                docs.append(doc)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployments = by_kind(docs, "Deployment")
    assert len(deployments) == 1, "one Deployment"
    return deployments[0]["spec"]["template"]["spec"]["containers"][0]


def expect_common(docs: list[dict[str, Any]]) -> None:
    c = container(docs)
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"grpc": 50051, "admin": 9090}, f"ports grpc 50051, admin 9090: {ports}")
    check("--admin-addr=0.0.0.0:9090" in c["args"], "admin on 9090")
    check("--grpc-addr=0.0.0.0:50051" in c["args"], "gRPC on 50051")
    check(pod["securityContext"].get("runAsNonRoot") is True, "runAsNonRoot")
    check(c["securityContext"].get("readOnlyRootFilesystem") is True, "read-only root fs")
    check(c["securityContext"].get("allowPrivilegeEscalation") is False, "no privilege escalation")
    svc = by_kind(docs, "Service")[0]
    check({p["name"] for p in svc["spec"]["ports"]} == {"grpc", "metrics"}, "Service grpc+metrics")
    roles = by_kind(docs, "ClusterRole")
    check(len(roles) == 1, "one ClusterRole")
    rules = roles[0]["rules"]
    check(
        not any("secrets" in r["resources"] for r in rules),
        "Secrets are not readable cluster-wide",
    )
    check(not any("*" in r["verbs"] or "*" in r["resources"] for r in rules), "no wildcards")
    lease_roles = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leases")]
    check(
        len(lease_roles) == 1 and lease_roles[0]["rules"][0]["resources"] == ["leases"],
        "a namespaced Role for leases",
    )
    check(len(by_kind(docs, "ConfigMap")) >= 1, "dashboards ConfigMap")


def expect_default(docs: list[dict[str, Any]]) -> None:
    c = container(docs)
    check("--store=embedded" in c["args"], "embedded store by default")
    check("--allow-plaintext" in c["args"], "plaintext allowed by default, without TLS")
    check(
        not any(a.startswith("--master-keys") for a in c["args"]),
        "keys generated on the data volume by default",
    )
    check(len(by_kind(docs, "PersistentVolumeClaim")) == 1, "a PVC for the embedded store")
    check(by_kind(docs, "Deployment")[0]["spec"]["strategy"]["type"] == "Recreate", "Recreate")
    check(not by_kind(docs, "ServiceMonitor"), "no ServiceMonitor by default")
    check(not by_kind(docs, "PrometheusRule"), "no PrometheusRule by default")
    secret_roles = [r for r in by_kind(docs, "Role") if "secrets" in r["rules"][0]["resources"]]
    check(
        [r["metadata"]["namespace"] for r in secret_roles] == [NAMESPACE],
        "Secrets readable in the release namespace only",
    )


def expect_production(docs: list[dict[str, Any]]) -> None:
    c = container(docs)
    dep = by_kind(docs, "Deployment")[0]
    check(dep["spec"]["replicas"] == 3, "three replicas")
    check("--store=etcd" in c["args"], "etcd store")
    check(
        any(a.startswith("--etcd-endpoints=https://etcd-0") for a in c["args"]),
        "etcd endpoints passed",
    )
    check("--master-keys=/etc/yunshu/master-keys" in c["args"], "master keys from the Secret")
    check("--allow-plaintext" not in c["args"], "no plaintext with TLS")
    pod = dep["spec"]["template"]["spec"]
    keys = [v for v in pod["volumes"] if v["name"] == "master-keys"]
    check(
        [v["secret"]["secretName"] for v in keys] == ["yunshu-master-keys"],
        "master keys volume from the named Secret",
    )
    check(
        any(m["name"] == "master-keys" and m.get("readOnly") for m in c["volumeMounts"]),
        "master keys mounted read-only",
    )
    check("--tls-cert=/etc/yunshu/tls/tls.crt" in c["args"], "TLS on gRPC")
    check("--config=/etc/yunshu/config/yunshu.yaml" in c["args"], "config file passed")
    check(not by_kind(docs, "PersistentVolumeClaim"), "no PVC on etcd")
    check(len(by_kind(docs, "ServiceMonitor")) == 1, "ServiceMonitor on")
    check(len(by_kind(docs, "PrometheusRule")) == 1, "PrometheusRule on")
    check(len(by_kind(docs, "PodDisruptionBudget")) == 1, "PDB with 3 replicas")
    secret_ns = sorted(
        r["metadata"]["namespace"]
        for r in by_kind(docs, "Role")
        if "secrets" in r["rules"][0]["resources"]
    )
    check(secret_ns == ["yunshu-credentials", "yunshu-system"], f"Secret Roles: {secret_ns}")


def run(chart_dir: Path, name: str, values: dict[str, Any], expect) -> None:
    print(f"== {name} values")
    report = lint(chart_dir, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}.0")
    for m in report.get("messages", []):
        sev = {0: "unknown", 1: "info", 2: "warning", 3: "error"}.get(m.get("severity"), "?")
        line = f"lint {sev}: {m.get('path')}: {m.get('error')}"
        if m.get("severity", 0) >= 2:
            fail(line)
        else:
            print(f"  {line}")
    for e in report.get("errors", []):
        fail(f"lint: {e}")
    print(f"  lint: {report.get('total_charts_linted')} chart(s), {len(report.get('messages', []))} message(s)")
    chart = Chart.load(chart_dir)
    docs = render(chart, values)
    print(f"  rendered {len(docs)} manifest(s)")
    for doc in docs:
        origin = doc.pop("__origin")
        validate(doc, origin)
    expect(docs)


def main() -> int:
    chart_dir = Path(sys.argv[1])
    chart = Chart.load(chart_dir)
    print(f"== CRDs in {chart_dir}/crds")
    kinds = []
    for crd in chart.crds:
        for doc in yaml.safe_load_all(crd["data"]):
            if doc:
                validate(doc, crd["filename"])
                kinds.append(doc["spec"]["names"]["kind"])
    check(len(kinds) == 6, f"six CRDs in the chart: {kinds}")

    production = yaml.safe_load((chart_dir / "ci" / "production-values.yaml").read_text())
    run(chart_dir, "default", {}, expect_default)
    run(chart_dir, "production", production, expect_production)

    print("== refused value sets")
    for label, bad in [
        ("embedded store with 2 replicas", {"replicas": 2}),
        ("unknown store", {"store": {"type": "consul"}}),
        ("TLS without a Secret", {"tls": {"enabled": True}}),
        ("etcd store without master keys", {"store": {"type": "etcd"}}),
    ]:
        try:
            render(chart, bad)
            fail(f"{label}: rendered, should have been refused")
        except HelmError as e:
            print(f"  ok   {label}: refused ({str(e).splitlines()[0][:120]})")

    if failures:
        print(f"\n{len(failures)} failure(s):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("\nchart OK: lint clean, every manifest valid for Kubernetes " + KUBE_VERSION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
