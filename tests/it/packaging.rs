//! Packaging cannot drift from the code: every YAML file parses (the chart's templates once their
//! directives are taken out), the Helm chart's values mirror
//! config.toml key for key (secrets excepted), every TELEBOT__ variable the deployment files set
//! names a real key, every `.Values` path a template uses exists, and the Grafana dashboard
//! charts only metrics the service exports. No container engine runs here; these checks are
//! what keeps the files honest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Config keys that are secrets: supplied by a Secret, never in the chart's values.
const SECRETS: &[&str] = &[
    "database.url",
    "redis.url",
    "telegram.token",
    "telegram.webhook_secret",
    "tron.trongrid_api_key",
    "security.webhook_secret",
    "payments.callback_secret",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> serde_norway::Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

/// section.key -> default value, from config.toml.
fn config_keys() -> BTreeMap<String, toml::Value> {
    let table: toml::Table = read("config.toml").parse().unwrap();
    let mut keys = BTreeMap::new();
    for (section, v) in table {
        for (key, value) in v.as_table().unwrap() {
            keys.insert(format!("{section}.{key}"), value.clone());
        }
    }
    keys
}

fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("TELEBOT__")?;
    let (section, key) = rest.split_once("__")?;
    Some(format!(
        "{}.{}",
        section.to_ascii_lowercase(),
        key.to_ascii_lowercase()
    ))
}

fn same_value(toml: &toml::Value, yaml: &serde_norway::Value) -> bool {
    match (toml, yaml) {
        (toml::Value::String(a), serde_norway::Value::String(b)) => a == b,
        (toml::Value::Integer(a), serde_norway::Value::Number(b)) => b.as_i64() == Some(*a),
        (toml::Value::Boolean(a), serde_norway::Value::Bool(b)) => a == b,
        (toml::Value::Array(a), serde_norway::Value::Sequence(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        _ => false,
    }
}

#[test]
fn chart_values_mirror_config_toml_key_for_key() {
    let config = config_keys();
    let values = yaml("deploy/helm/telebot/values.yaml");
    let chart = yaml("deploy/helm/telebot/Chart.yaml");
    assert_eq!(chart["name"].as_str(), Some("telebot"));
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    let mut chart_keys = BTreeSet::new();
    for (section, keys) in values["config"]
        .as_mapping()
        .expect("values.config is a map")
    {
        let section = section.as_str().unwrap();
        for (key, value) in keys.as_mapping().into_iter().flatten() {
            let path = format!("{section}.{}", key.as_str().unwrap());
            assert!(
                !SECRETS.contains(&path.as_str()),
                "secret {path} must not be in values.yaml"
            );
            let default = config
                .get(&path)
                .unwrap_or_else(|| panic!("values.yaml has {path}, config.toml does not"));
            if path != "http.addr" {
                assert!(
                    same_value(default, value),
                    "{path}: values.yaml has {value:?}, config.toml has {default:?}"
                );
            }
            chart_keys.insert(path);
        }
    }
    let expected: BTreeSet<String> = config
        .keys()
        .filter(|k| !SECRETS.contains(&k.as_str()))
        .cloned()
        .collect();
    let missing: Vec<_> = expected.difference(&chart_keys).collect();
    assert!(
        missing.is_empty(),
        "config.toml keys missing from values.yaml: {missing:?}"
    );
    for secret in SECRETS {
        assert!(
            config.contains_key(*secret),
            "{secret} is no longer a config key"
        );
    }
}

/// `.Values.a.b.c` paths used by the templates.
fn value_paths(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in template.match_indices(".Values.") {
        let rest = &template[i + 8..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        out.push(path.trim_end_matches('.').to_owned());
    }
    out
}

#[test]
fn templates_use_only_values_that_exist_and_real_config_variables() {
    let values = yaml("deploy/helm/telebot/values.yaml");
    let config = config_keys();
    let dir = Path::new(ROOT).join("deploy/helm/telebot/templates");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for p in value_paths(&text) {
            let mut node = &values;
            for part in p.split('.') {
                node = node.get(part).unwrap_or_else(|| {
                    panic!("{}: .Values.{p} is not in values.yaml", path.display())
                });
            }
            seen += 1;
        }
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(key) = env_key(word) {
                assert!(
                    config.contains_key(&key),
                    "{}: {word} names no config key",
                    path.display()
                );
            }
        }
    }
    assert!(seen > 10, "templates were read ({seen} value references)");
    let deployment = read("deploy/helm/telebot/templates/deployment.yaml");
    for probe in [
        "/healthz",
        "/readyz",
        "livenessProbe",
        "readinessProbe",
        "configMap",
        "secretKeyRef",
    ] {
        assert!(deployment.contains(probe), "deployment.yaml lacks {probe}");
    }
}

#[test]
fn compose_and_prometheus_files_parse_and_name_real_settings() {
    let config = config_keys();
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().unwrap();
    for s in ["telebot", "postgres", "redis", "prometheus"] {
        assert!(services.contains_key(s), "compose service {s} missing");
    }
    let text = read("docker-compose.yml");
    let mut vars = 0;
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(key) = env_key(word) {
            assert!(
                config.contains_key(&key),
                "docker-compose.yml: {word} names no config key"
            );
            vars += 1;
        }
    }
    assert!(
        vars >= 3,
        "compose configures the service through TELEBOT__ variables"
    );
    let prom = yaml("deploy/prometheus.yml");
    let scrape = prom["scrape_configs"].as_sequence().unwrap();
    assert!(
        format!("{scrape:?}").contains("telebot:8080"),
        "prometheus scrapes the service"
    );
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2,
        "multi-stage build"
    );
    assert!(dockerfile.contains("USER "), "runs as a non-root user");
    assert!(dockerfile.contains("EXPOSE 8080"));
}

#[test]
fn the_grafana_dashboard_charts_only_exported_metrics() {
    const EXPORTED: &[&str] = &[
        "bot_updates_total",
        "bot_update_duration_seconds",
        "bot_sessions_active",
        "rate_limited_total",
        "orders_created_total",
        "orders_paid_total",
        "orders_expired_total",
        "order_payment_duration_seconds",
        "payments_matched_total",
        "payment_detection_latency_seconds",
        "scanner_lag_seconds",
        "scanner_errors_total",
        "matcher_allocations_active",
        "matcher_slots_exhausted_total",
        "actor_restarts_total",
        "http_requests_total",
        "http_request_duration_seconds",
        "outbox_pending",
        "telegram_send_retries_total",
    ];
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/telebot-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "expr" {
                        out.push(x.as_str().unwrap_or("").to_owned());
                    } else {
                        collect(x, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&dash, &mut exprs);
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let mut used = BTreeSet::new();
    for e in &exprs {
        // a metric is a name followed by a label selector or a range
        let bytes = e.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_lowercase()
                && (i == 0
                    || !(bytes[i - 1].is_ascii_alphanumeric()
                        || bytes[i - 1] == b'_'
                        || bytes[i - 1] == b'$'))
            {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let name = &e[start..i];
                if matches!(bytes.get(i), Some(b'{') | Some(b'['))
                    || (bytes.get(i) == Some(&b')') && name.contains('_'))
                {
                    let base = name
                        .trim_end_matches("_bucket")
                        .trim_end_matches("_sum")
                        .trim_end_matches("_count");
                    assert!(
                        EXPORTED.contains(&base),
                        "dashboard query uses {name}, which the service does not export: {e}"
                    );
                    used.insert(base.to_owned());
                }
            } else {
                i += 1;
            }
        }
    }
    assert!(
        used.len() >= 15,
        "the dashboard covers the metrics: {used:?}"
    );
}

/// A chart template with its template directives taken out: lines that hold only directives
/// (`{{- if ... }}`, `{{- end }}`, `{{- toYaml ... | nindent 8 }}`, the multi-line variable block
/// at the top) go, and a directive inside a value becomes `x`. What is left is the fixed part of
/// the manifest, which must be YAML on its own.
fn template_skeleton(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    // directives that span lines, and whole-line directives
    while let Some(start) = rest.find("{{") {
        let line_start = rest[..start].rfind('\n').map_or(0, |i| i + 1);
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e + 2)
            .expect("every {{ is closed");
        let line_end = rest[end..].find('\n').map_or(rest.len(), |i| end + i);
        let before = &rest[line_start..start];
        let after = &rest[end..line_end];
        if before.trim().is_empty() && after.trim().is_empty() {
            out.push_str(&rest[..line_start]);
            rest = rest.get(line_end + 1..).unwrap_or("");
        } else {
            out.push_str(&rest[..start]);
            out.push('x');
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn chart_templates_are_yaml_once_their_directives_are_taken_out() {
    let dir = Path::new(ROOT).join("deploy/helm/telebot/templates");
    let mut kinds = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let skeleton = template_skeleton(&std::fs::read_to_string(&path).unwrap());
        let doc: serde_norway::Value = serde_norway::from_str(&skeleton)
            .unwrap_or_else(|e| panic!("{name} is not YAML once rendered: {e}\n{skeleton}"));
        assert!(doc["apiVersion"].is_string(), "{name}: no apiVersion");
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no kind"));
        kinds.insert(kind.to_owned());
        if kind == "Deployment" {
            let container = &doc["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(container["ports"][0]["containerPort"], 8080);
            let env = container["env"].as_sequence().expect("secret variables");
            assert!(
                env.iter()
                    .all(|e| e["valueFrom"]["secretKeyRef"]["optional"] == true),
                "{env:?}"
            );
        }
    }
    let expected: BTreeSet<String> = ["ConfigMap", "Deployment", "Service", "ServiceMonitor"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(kinds, expected);
}
