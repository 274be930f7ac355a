//! The queries of the chart's dashboards, with their variables bound.

use super::*;

/// The `yunshu_*` metric names an expression reads.
pub(super) fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("yunshu_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// The family a sample or query name belongs to.
pub(super) fn family(name: &str, families: &BTreeSet<String>) -> String {
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created", ""] {
        if let Some(base) = name.strip_suffix(suffix)
            && (families.contains(base) || PENDING.contains(&base))
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Every (dashboard, panel, expression) with `$variable` bound to each of
/// its values, and the variable values themselves.
pub(super) fn panel_queries(
    prom: &Prometheus,
    failures: &mut Vec<String>,
    driven: Option<&BTreeSet<String>>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("dashboards"))
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "four dashboards: {files:?}");
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        // One bound variable per dashboard at most (foundation or department).
        let mut bindings: Vec<Option<(String, String)>> = vec![None];
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] != "query" {
                continue;
            }
            let var_name = var["name"].as_str().expect("variable name");
            let q = var["query"]["query"].as_str().expect("variable query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(", ").expect("two arguments");
            let values = prom
                .api(&format!("label/{label}/values?match[]={}", encode(metric)))
                .map(|v| v.as_array().cloned().unwrap_or_default())
                .unwrap_or_default();
            if values.is_empty() {
                failures.push(format!("{name}: variable ${var_name} ({q}) has no values"));
            }
            bindings = values
                .iter()
                .filter_map(Value::as_str)
                // With real foundations, a foundation's detail dashboard is
                // checked for the foundations Yunshu drives.
                .filter(|v| var_name != "foundation" || driven.is_none_or(|d| d.contains(*v)))
                .map(|v| Some((var_name.to_owned(), v.to_owned())))
                .collect();
        }
        for panel in d["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("expr");
                for binding in &bindings {
                    let mut e = expr.replace("$__rate_interval", "20s");
                    let mut label = format!("{name} / {title}");
                    if let Some((var, value)) = binding {
                        e = e
                            .replace(&format!("${{{var}}}"), value)
                            .replace(&format!("${var}"), value);
                        label += &format!(" [{var}={value}]");
                    }
                    out.push((label, expr.to_owned(), e));
                }
            }
        }
    }
    out
}
