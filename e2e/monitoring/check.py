"""Static checks of the monitoring files; called by test.sh.

- every `runbook_url` of charts/yunshu/files/alerts.yaml points at a heading
  of docs/monitoring.md, and every alert there has one;
- every dashboard is valid JSON with a unique uid, a `datasource` variable,
  and panels whose targets all have a PromQL `expr` on `${datasource}`;
- with --chart (needs helm_python, PyPI helm-python-sdk): the chart's PrometheusRule
  renders exactly the groups of files/alerts.yaml (plus the chart-only
  availability group), and the dashboards ConfigMap holds every dashboard
  unchanged.

Exits 1 after reporting every failure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "yunshu"
DOCS = ROOT / "docs" / "monitoring.md"
failures: list[str] = []


def check(cond: bool, msg: str) -> None:
    print(f"  {'ok  ' if cond else 'FAIL'} {msg}")
    if not cond:
        failures.append(msg)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def check_runbooks(groups: list[dict]) -> None:
    print("== runbooks")
    have = anchors(DOCS.read_text())
    for g in groups:
        for r in g["rules"]:
            url = r.get("annotations", {}).get("runbook_url", "")
            anchor = url.partition("docs/monitoring.md#")[2]
            check(bool(anchor) and anchor in have, f"{r['alert']}: runbook {url or '(none)'}")
            for key in ("summary", "description"):
                check(bool(r.get("annotations", {}).get(key)), f"{r['alert']}: has a {key}")
            check(r.get("labels", {}).get("severity") in {"critical", "warning", "info"},
                  f"{r['alert']}: has a severity")


def check_dashboards() -> dict[str, str]:
    print("== dashboards")
    texts = {}
    uids = set()
    for path in sorted((CHART / "dashboards").glob("*.json")):
        text = path.read_text()
        texts[path.name] = text
        d = json.loads(text)
        check(d.get("uid") not in uids, f"{path.name}: unique uid {d.get('uid')}")
        uids.add(d.get("uid"))
        names = [v["name"] for v in d["templating"]["list"]]
        check("datasource" in names, f"{path.name}: has a datasource variable")
        targets = 0
        for p in d["panels"]:
            if p["type"] == "row":
                continue
            ok = bool(p.get("targets")) and all(
                t.get("expr") and t.get("datasource", {}).get("uid") == "${datasource}"
                for t in p["targets"])
            targets += len(p.get("targets", []))
            if not ok:
                check(False, f"{path.name}: panel {p['title']!r} queries ${{datasource}} with PromQL")
        check(targets > 0, f"{path.name}: {len(d['panels'])} panels, {targets} queries")
    check(len(texts) >= 4, f"{len(texts)} dashboards")
    return texts


def check_chart(groups: list[dict], dashboards: dict[str, str]) -> None:
    from helm_python import Chart

    print("== chart renders the same rules and dashboards")
    chart = Chart.load(CHART)
    values = {"metrics": {"prometheusRule": {"enabled": True}}}
    manifests = chart.render(values, name="yunshu", namespace="yunshu-system", is_install=True)
    docs = [
        d
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for d in yaml.safe_load_all(text)
        if d
    ]
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    check(len(rules) == 1, "one PrometheusRule")
    rendered = [g for g in rules[0]["spec"]["groups"] if g["name"] != "yunshu.availability"]
    check(rendered == groups, "PrometheusRule groups == files/alerts.yaml groups")
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]
    check(len(cms) == 1, "one dashboards ConfigMap")
    for name, text in dashboards.items():
        data = cms[0]["data"].get(name)
        check(data is not None and json.loads(data) == json.loads(text), f"ConfigMap holds {name}")


def main() -> int:
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    check_runbooks(groups)
    dashboards = check_dashboards()
    if "--chart" in sys.argv:
        check_chart(groups, dashboards)
    if failures:
        print(f"\n{len(failures)} failure(s)")
        return 1
    print("\nmonitoring files OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
