//! The request lines' CloudWatch Embedded Metric Format, checked as
//! CloudWatch would read it: each line against the specification's schema
//! (`tests/integration/schemas/emf.json`), each dimension and metric it
//! names present at the top level with a value of the right type, and only
//! our dimension sets and metric names.

use auth_shared::telemetry::metrics::{DIMENSION_SETS, Metric};
use serde_json::Value;

/// The metrics every line carries, zero or not: rates and percentiles are
/// computed from them.
const ALWAYS: [Metric; 5] = [
    Metric::Requests,
    Metric::ClientErrors,
    Metric::ServerErrors,
    Metric::Latency,
    Metric::DynamoDbCalls,
];

/// Publishes EMF in the default namespace for this test process (a no-op
/// once a namespace was chosen), so request lines carry it.
pub fn publish() {
    auth_shared::telemetry::metrics::publish(Some(
        auth_shared::telemetry::metrics::DEFAULT_NAMESPACE,
    ));
}

/// The request lines of `text` (one JSON object per line), each checked as
/// the module says; panics naming the line and the rule it breaks.
pub fn request_lines(text: &str) -> Vec<Value> {
    let schema: Value =
        serde_json::from_str(include_str!("../integration/schemas/emf.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let sets: Vec<Vec<&str>> = DIMENSION_SETS.iter().map(|s| s.to_vec()).collect();
    let mut lines = Vec::new();
    for raw in text.lines() {
        let line: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
        if line["message"] != "request" && line["message"] != "authorize" {
            continue;
        }
        let errors: Vec<String> = validator
            .iter_errors(&line)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "not EMF: {errors:?}\n{raw}");
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], "BearerAuth", "{raw}");
            let dimensions: Vec<Vec<&str>> = directive["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|set| {
                    set.as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_str().unwrap())
                        .collect()
                })
                .collect();
            assert_eq!(dimensions, sets, "only the listed dimension sets: {raw}");
            for name in dimensions.iter().flatten() {
                assert!(
                    line[*name].is_string(),
                    "dimension {name} is not a string member: {raw}"
                );
            }
            let listed: Vec<&str> = directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap())
                .collect();
            for always in ALWAYS {
                assert!(
                    listed.contains(&always.name()),
                    "{} left out: {raw}",
                    always.name()
                );
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(names.contains(&name), "not one of ours: {name}: {raw}");
                assert!(line[name].is_number(), "metric {name} has no number: {raw}");
            }
        }
        lines.push(line);
    }
    lines
}

/// The value `line` gives `metric`, 0 when it leaves it out (a count that did not happen).
pub fn value(line: &Value, metric: Metric) -> f64 {
    line[metric.name()].as_f64().unwrap_or(0.0)
}
