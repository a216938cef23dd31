//! `template.yaml`: every route throttle and alarm threshold is a parameter
//! with a default, so no ceiling is fixed in the template (docs/scaling.md
//! sizes the throttles); every alarm notifies the one topic; and the alarms
//! and the dashboard read only metrics that exist: the functions' own (the
//! list in `auth_shared::telemetry::metrics`, written as EMF) or one AWS
//! publishes for a resource of this stack. A metric nobody publishes is an
//! alarm that never fires and a graph that stays empty, and nothing else
//! would say so.

use std::collections::BTreeSet;
use std::path::Path;

use auth_shared::telemetry::metrics::{DEFAULT_NAMESPACE, DIMENSION_SETS, Metric};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// The `Function` dimension's values: the names the five request-path
/// Lambdas pass to the handler (rotate and whoami write no metrics).
const FUNCTIONS: [&str; 5] = ["login", "verify", "revoke", "admin", "authorizer"];

/// What AWS publishes per namespace that the stack may watch: the metric
/// names, and the one dimension (naming a resource of the stack) they are
/// read by.
const AWS_METRICS: [(&str, &[&str]); 3] = [
    (
        "AWS/Lambda",
        &[
            "Errors",
            "Throttles",
            "Invocations",
            "Duration",
            "ConcurrentExecutions",
        ],
    ),
    (
        "AWS/DynamoDB",
        &[
            "ReadThrottleEvents",
            "WriteThrottleEvents",
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
        ],
    ),
    // HTTP APIs publish these lower-case names under ApiId (REST APIs
    // publish 4XXError and 5XXError under ApiName).
    (
        "AWS/ApiGateway",
        &[
            "4xx",
            "5xx",
            "Count",
            "Latency",
            "IntegrationLatency",
            "DataProcessed",
        ],
    ),
];

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The parameter a `!Ref` names, or why the value is not one.
fn referenced(value: &Yaml) -> Result<&str, String> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => {
            tagged.value.as_str().ok_or_else(|| format!("{value:?}"))
        }
        other => Err(format!("a fixed value: {other:?}")),
    }
}

/// The template's resources of type `kind`, by logical id.
fn resources<'t>(template: &'t Yaml, kind: &str) -> Vec<(&'t str, &'t Yaml)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str().unwrap(), resource))
        .collect()
}

/// A namespace or dimension value as the template writes it.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Text(String),
    /// A `!Ref`, or a `${...}` of a `!Sub`: the parameter or resource named.
    Ref(String),
    /// Whatever values exist: a dashboard SEARCH over a dimension.
    Any,
}

impl Term {
    fn of_yaml(value: &Yaml) -> Result<Self, String> {
        match value {
            Yaml::String(text) => Ok(Self::Text(text.clone())),
            tagged => referenced(tagged).map(|name| Self::Ref(name.to_owned())),
        }
    }

    fn of_sub(text: &str) -> Self {
        match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
            Some(name) => Self::Ref(name.to_owned()),
            None => Self::Text(text.to_owned()),
        }
    }
}

/// One metric an alarm or a graph reads.
#[derive(Debug)]
struct MetricId {
    namespace: Term,
    name: String,
    dimensions: Vec<(String, Term)>,
}

impl MetricId {
    fn dimension(&self, name: &str) -> Option<&Term> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn is(&self, namespace: &Term, name: &str, dimensions: &[(&str, Term)]) -> bool {
        self.namespace == *namespace
            && self.name == name
            && self.dimensions.len() == dimensions.len()
            && dimensions.iter().all(|(n, v)| self.dimension(n) == Some(v))
    }
}

fn ours() -> Term {
    Term::Ref("MetricsNamespace".into())
}

/// Why `metric` is neither one the functions emit nor one AWS publishes for
/// a resource of `template`, if it is neither.
fn check_metric(template: &Yaml, metric: &MetricId) -> Result<(), String> {
    let dimension_names: BTreeSet<&str> =
        metric.dimensions.iter().map(|(n, _)| n.as_str()).collect();
    if metric.namespace == ours() {
        if !Metric::ALL.iter().any(|m| m.name() == metric.name) {
            return Err(format!(
                "{} is not a metric the functions write",
                metric.name
            ));
        }
        if !DIMENSION_SETS
            .iter()
            .any(|set| set.iter().copied().collect::<BTreeSet<_>>() == dimension_names)
        {
            return Err(format!(
                "dimensions {dimension_names:?} are not a set the functions write"
            ));
        }
        for (name, value) in &metric.dimensions {
            match (name.as_str(), value) {
                (_, Term::Any) => {}
                ("Function", Term::Text(f)) if FUNCTIONS.contains(&f.as_str()) => {}
                ("Route", Term::Text(r)) if r.starts_with('/') || r == "unknown" => {}
                _ => return Err(format!("no function writes {name}={value:?}")),
            }
        }
        return Ok(());
    }
    let Term::Text(namespace) = &metric.namespace else {
        return Err(format!(
            "namespace {:?} is neither ours nor AWS's",
            metric.namespace
        ));
    };
    let Some((_, names)) = AWS_METRICS.iter().find(|(ns, _)| ns == namespace) else {
        return Err(format!(
            "namespace {namespace} is not one this stack's resources publish to"
        ));
    };
    if !names.contains(&metric.name.as_str()) {
        return Err(format!(
            "{namespace} publishes no {} this test knows",
            metric.name
        ));
    }
    // The resource each namespace's metrics are read by, and the dimensions that may come with it.
    let (key, kind, optional): (&str, &str, &[&str]) = match namespace.as_str() {
        "AWS/Lambda" => ("FunctionName", "AWS::Serverless::Function", &[]),
        "AWS/DynamoDB" => (
            "TableName",
            "AWS::DynamoDB::Table",
            &["GlobalSecondaryIndexName"],
        ),
        _ => ("ApiId", "AWS::Serverless::HttpApi", &[]),
    };
    let extra: Vec<&&str> = dimension_names
        .iter()
        .filter(|n| **n != key && !optional.contains(n))
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "{namespace} {} has no dimension {extra:?}",
            metric.name
        ));
    }
    let resource = match metric.dimension(key) {
        Some(Term::Ref(id)) => resources(template, kind)
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, r)| r)
            .ok_or_else(|| format!("{key} names {id}, no resource of the stack of type {kind}"))?,
        // A SEARCH or a fixed name would watch resources of other stacks.
        other => {
            return Err(format!(
                "{key} is {other:?}, not a !Ref of a resource of type {kind}"
            ));
        }
    };
    if let Some(index) = metric.dimension("GlobalSecondaryIndexName") {
        let indexes = index_names(resource);
        if !matches!(index, Term::Text(i) if indexes.contains(i)) {
            return Err(format!(
                "index {index:?} is not one of the table's, {indexes:?}"
            ));
        }
    }
    Ok(())
}

/// A table's global secondary indexes.
fn index_names(table: &Yaml) -> Vec<String> {
    table["Properties"]["GlobalSecondaryIndexes"]
        .as_sequence()
        .map(|indexes| {
            indexes
                .iter()
                .map(|i| i["IndexName"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The identifiers a metric math expression names: metric math functions
/// are upper case, ids start with a lower-case letter.
fn expression_ids(expression: &str) -> Vec<&str> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect()
}

fn yaml_metric(metric: &Yaml) -> Result<MetricId, String> {
    let dimensions = metric["Dimensions"]
        .as_sequence()
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    Ok((
                        d["Name"]
                            .as_str()
                            .ok_or("a dimension without Name")?
                            .to_owned(),
                        Term::of_yaml(&d["Value"])?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(MetricId {
        namespace: Term::of_yaml(&metric["Namespace"])?,
        name: metric["MetricName"]
            .as_str()
            .ok_or("no MetricName")?
            .to_owned(),
        dimensions,
    })
}

/// Every metric an alarm reads, directly or in its metric math.
fn alarm_metrics(alarm: &Yaml) -> Result<Vec<MetricId>, String> {
    let properties = &alarm["Properties"];
    if properties.get("MetricName").is_some() {
        return Ok(vec![yaml_metric(properties)?]);
    }
    let queries = properties["Metrics"]
        .as_sequence()
        .ok_or("neither MetricName nor Metrics")?;
    let ids: Vec<&str> = queries.iter().filter_map(|q| q["Id"].as_str()).collect();
    let returned = queries
        .iter()
        .filter(|q| q["ReturnData"] != Yaml::Bool(false))
        .count();
    if returned != 1 {
        return Err(format!(
            "{returned} of its Metrics return data; an alarm needs exactly 1"
        ));
    }
    let mut metrics = Vec::new();
    for query in queries {
        if let Some(expression) = query["Expression"].as_str() {
            for id in expression_ids(expression) {
                if !ids.contains(&id) {
                    return Err(format!("{expression:?} names {id}, no Id of the alarm"));
                }
            }
        } else {
            metrics.push(yaml_metric(&query["MetricStat"]["Metric"])?);
        }
    }
    Ok(metrics)
}

fn alarms(template: &Yaml) -> Vec<(&str, &Yaml)> {
    let alarms = resources(template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 15, "{} alarms", alarms.len());
    alarms
}

/// The metric a dashboard SEARCH looks for. Only the exact form the
/// dashboard uses is read, `SEARCH('{"ns",Dim,...} MetricName="Name"',
/// 'Stat', period)`; anything else is an error rather than a pass.
fn search_metric(expression: &str) -> Result<MetricId, String> {
    let unread = || format!("a SEARCH this test does not read: {expression}");
    let query = expression
        .strip_prefix("SEARCH('")
        .and_then(|q| q.split_once("',"))
        .ok_or_else(unread)?
        .0;
    let (schema, term) = query
        .strip_prefix('{')
        // The last brace: the namespace's own ${...} holds one.
        .and_then(|q| q.rsplit_once('}'))
        .ok_or_else(unread)?;
    let mut schema = schema.split(',').map(str::trim);
    let namespace = schema.next().ok_or_else(unread)?.trim_matches('"');
    let name = term
        .trim()
        .strip_prefix("MetricName=\"")
        .and_then(|n| n.strip_suffix('"'))
        .ok_or_else(unread)?;
    Ok(MetricId {
        namespace: Term::of_sub(namespace),
        name: name.to_owned(),
        dimensions: schema.map(|d| (d.to_owned(), Term::Any)).collect(),
    })
}

/// A dashboard's metric row: `[namespace, name, dimension, value, ...,
/// {options}]`, every field spelled out (no `"..."` shorthand).
fn row_metric(row: &[Json]) -> Result<MetricId, String> {
    let fields: Vec<&str> = row
        .iter()
        .take_while(|f| !f.is_object())
        .map(|f| f.as_str().ok_or_else(|| format!("{f} in {row:?}")))
        .collect::<Result<_, _>>()?;
    let [namespace, name, dimensions @ ..] = fields.as_slice() else {
        return Err(format!("a row without namespace and name: {row:?}"));
    };
    if fields.iter().any(|f| f.chars().all(|c| c == '.')) || dimensions.len() % 2 != 0 {
        return Err(format!("a row this test does not read: {row:?}"));
    }
    Ok(MetricId {
        namespace: Term::of_sub(namespace),
        name: (*name).to_owned(),
        dimensions: dimensions
            .chunks(2)
            .map(|d| (d[0].to_owned(), Term::of_sub(d[1])))
            .collect(),
    })
}

/// The dashboard's body: the `!Sub` string, parsed as the JSON it is with
/// its `${...}` left in place (every one sits inside a JSON string).
fn dashboard(template: &Yaml) -> (String, Json) {
    let dashboards = resources(template, "AWS::CloudWatch::Dashboard");
    let [(_, dashboard)] = dashboards.as_slice() else {
        panic!("{} dashboards", dashboards.len())
    };
    let body = match &dashboard["Properties"]["DashboardBody"] {
        Yaml::Tagged(sub) if sub.tag == "Sub" => sub.value.as_str().unwrap().to_owned(),
        other => panic!("DashboardBody is not a !Sub string: {other:?}"),
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("DashboardBody: {e}"));
    (body, json)
}

/// Every metric a dashboard widget reads, directly or by SEARCH.
fn widget_metrics(widget: &Json) -> Result<Vec<MetricId>, String> {
    let rows = widget["properties"]["metrics"]
        .as_array()
        .ok_or("no metrics")?;
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.as_array()?.last()?["id"].as_str())
        .collect();
    let mut metrics = Vec::new();
    for row in rows {
        let row = row
            .as_array()
            .ok_or_else(|| format!("a row that is no array: {row}"))?;
        match row.as_slice() {
            [Json::Object(query)] => {
                let expression = query["expression"]
                    .as_str()
                    .ok_or("an expression row without expression")?;
                if expression.starts_with("SEARCH(") {
                    metrics.push(search_metric(expression)?);
                } else if let Some(id) = expression_ids(expression)
                    .into_iter()
                    .find(|id| !ids.contains(id))
                {
                    return Err(format!("{expression:?} names {id}, no id of the widget"));
                }
            }
            row => metrics.push(row_metric(row)?),
        }
    }
    Ok(metrics)
}

#[test]
fn every_route_throttle_of_the_api_is_a_number_parameter_with_a_default() {
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"];
    let mut settings = vec![("the default route".to_owned(), &api["DefaultRouteSettings"])];
    for (route, setting) in api["RouteSettings"].as_mapping().unwrap() {
        settings.push((route.as_str().unwrap().to_owned(), setting));
    }
    assert!(settings.len() > 4, "{settings:?}");
    for (route, setting) in settings {
        for field in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let name =
                referenced(&setting[field]).unwrap_or_else(|e| panic!("{route} {field}: {e}"));
            let parameter = &template["Parameters"][name];
            assert_eq!(parameter["Type"], "Number", "{route} {field}: {name}");
            assert!(
                parameter["Default"].as_u64().is_some_and(|d| d > 0),
                "{route} {field}: {name}"
            );
        }
    }
}

#[test]
fn every_alarm_reads_a_metric_the_functions_write_or_aws_publishes_for_the_stack() {
    let template = template();
    for (id, alarm) in alarms(&template) {
        let metrics = alarm_metrics(alarm).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(!metrics.is_empty(), "{id} reads no metric");
        for metric in metrics {
            check_metric(&template, &metric).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }
}

#[test]
fn every_alarm_notifies_the_topic_at_a_threshold_that_is_a_parameter_with_a_default() {
    let template = template();
    let topics = resources(&template, "AWS::SNS::Topic");
    let [(topic, _)] = topics.as_slice() else {
        panic!("{} topics", topics.len())
    };
    for (id, alarm) in alarms(&template) {
        let properties = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let targets = properties[actions]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: no {actions}"));
            let targets: Vec<_> = targets.iter().map(referenced).collect();
            assert_eq!(targets, [Ok(*topic)], "{id} {actions}");
        }
        assert!(
            ["notBreaching", "breaching", "ignore", "missing"]
                .iter()
                .any(|t| properties["TreatMissingData"] == *t),
            "{id}: TreatMissingData is {:?}, choose it",
            properties["TreatMissingData"]
        );
        let name =
            referenced(&properties["Threshold"]).unwrap_or_else(|e| panic!("{id} Threshold: {e}"));
        let parameter = &template["Parameters"][name];
        assert_eq!(parameter["Type"], "Number", "{id}: {name}");
        assert!(
            parameter["Default"].as_f64().is_some(),
            "{id}: {name} has no default"
        );
        assert!(
            parameter["Description"]
                .as_str()
                .is_some_and(|d| d.len() > 40),
            "{id}: {name} is undocumented"
        );
    }
    assert_eq!(
        referenced(&template["Outputs"]["AlarmTopicArn"]["Value"]),
        Ok(*topic)
    );
    let subscriptions = resources(&template, "AWS::SNS::Subscription");
    let [(_, email)] = subscriptions.as_slice() else {
        panic!("{} subscriptions", subscriptions.len())
    };
    assert_eq!(referenced(&email["Properties"]["TopicArn"]), Ok(*topic));
    assert_eq!(
        referenced(&email["Properties"]["Endpoint"]),
        Ok("AlarmEmail")
    );
    assert_eq!(
        template["Parameters"]["AlarmEmail"]["Default"], "",
        "the e-mail is optional"
    );
    let condition = email["Condition"]
        .as_str()
        .expect("the subscription is conditional");
    let test = format!("{:?}", template["Conditions"][condition]);
    assert!(
        test.contains("AlarmEmail") && test.contains("Not"),
        "{condition}: {test}"
    );
}

/// A metric by namespace, name and dimensions.
type Wanted<'a> = (&'a Term, &'a str, &'a [(&'a str, Term)]);

#[test]
fn every_function_table_index_and_api_of_the_stack_has_its_alarms() {
    let template = template();
    let watched: Vec<(&str, &Yaml, Vec<MetricId>)> = alarms(&template)
        .into_iter()
        .map(|(id, alarm)| (id, alarm, alarm_metrics(alarm).unwrap()))
        .collect();
    // Whether one alarm reads all of `wanted`.
    let alarmed = |wanted: &[Wanted]| {
        watched.iter().any(|(_, _, metrics)| {
            wanted
                .iter()
                .all(|(ns, name, dims)| metrics.iter().any(|m| m.is(ns, name, dims)))
        })
    };
    for function in FUNCTIONS {
        let dims = [("Function", Term::Text(function.into()))];
        assert!(
            alarmed(&[
                (&ours(), "ServerErrors", &dims),
                (&ours(), "Requests", &dims)
            ]),
            "no server error rate alarm of {function}"
        );
        assert!(
            watched.iter().any(|(_, alarm, metrics)| {
                alarm["Properties"]["ExtendedStatistic"] == "p99"
                    && metrics.iter().any(|m| m.is(&ours(), "Latency", &dims))
            }),
            "no p99 latency alarm of {function}"
        );
    }
    let lambda = Term::Text("AWS/Lambda".into());
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let dims = [("FunctionName", Term::Ref(id.into()))];
        assert!(
            alarmed(&[(&lambda, "Throttles", &dims)]),
            "no throttle alarm of {id}"
        );
        if function["Metadata"]["BuildProperties"]["Binary"] == "rotate" {
            assert!(
                alarmed(&[(&lambda, "Errors", &dims)]),
                "no error alarm of the rotation, {id}"
            );
        }
    }
    let dynamodb = Term::Text("AWS/DynamoDB".into());
    for (id, table) in resources(&template, "AWS::DynamoDB::Table") {
        let mut scopes = vec![vec![("TableName", Term::Ref(id.into()))]];
        for index in index_names(table) {
            scopes.push(vec![
                ("TableName", Term::Ref(id.into())),
                ("GlobalSecondaryIndexName", Term::Text(index)),
            ]);
        }
        for dims in &scopes {
            for name in ["ReadThrottleEvents", "WriteThrottleEvents"] {
                assert!(
                    alarmed(&[(&dynamodb, name, dims)]),
                    "no {name} alarm of {dims:?}"
                );
            }
        }
    }
    let apis = resources(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 2);
    for (id, _) in apis {
        let dims = [("ApiId", Term::Ref(id.into()))];
        assert!(
            alarmed(&[(&Term::Text("AWS/ApiGateway".into()), "5xx", &dims)]),
            "no 5xx alarm of {id}"
        );
    }
}

#[test]
fn every_dashboard_metric_is_one_the_functions_write_or_aws_publishes_for_the_stack() {
    let template = template();
    let (body, dashboard) = dashboard(&template);
    for placeholder in body.split("${").skip(1) {
        let name = placeholder.split_once('}').expect("an unclosed ${").0;
        assert!(
            name.starts_with("AWS::")
                || template["Parameters"].get(name).is_some()
                || template["Resources"].get(name).is_some(),
            "${{{name}}} names no parameter or resource"
        );
    }
    let widgets = dashboard["widgets"].as_array().unwrap();
    let mut read = 0;
    for (n, widget) in widgets.iter().enumerate() {
        let title = &widget["properties"]["title"];
        match widget["type"].as_str() {
            Some("metric") => {
                for metric in
                    widget_metrics(widget).unwrap_or_else(|e| panic!("widget {n} {title}: {e}"))
                {
                    check_metric(&template, &metric)
                        .unwrap_or_else(|e| panic!("widget {n} {title}: {e}"));
                    read += 1;
                }
            }
            Some("log") => {
                let query = widget["properties"]["query"].as_str().unwrap();
                let sources: Vec<&str> = query
                    .split("SOURCE '")
                    .skip(1)
                    .map(|s| s.split_once('\'').unwrap().0)
                    .collect();
                let groups: Vec<String> = resources(&template, "AWS::Logs::LogGroup")
                    .into_iter()
                    .map(|(id, _)| format!("${{{id}}}"))
                    .collect();
                for source in &sources {
                    assert!(
                        groups.iter().any(|g| g == source),
                        "widget {n} {title}: {source}"
                    );
                }
                // The functions with log groups of their own (whoami's is
                // Lambda's default, made at its first call) are all queried.
                for (id, function) in resources(&template, "AWS::Serverless::Function") {
                    if let Ok(group) =
                        referenced(&function["Properties"]["LoggingConfig"]["LogGroup"])
                    {
                        let source = format!("${{{group}}}");
                        assert!(
                            sources.contains(&source.as_str()),
                            "widget {n} {title}: no {id} logs"
                        );
                    }
                }
            }
            Some("text") => {}
            other => panic!("widget {n}: type {other:?}"),
        }
    }
    assert!(read > 30, "{read} metrics");
}

#[test]
fn the_functions_take_the_metrics_namespace_and_tracing_from_parameters() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    let namespace = referenced(&globals["Environment"]["Variables"]["METRICS_NAMESPACE"]).unwrap();
    assert_eq!(namespace, "MetricsNamespace");
    assert_eq!(
        template["Parameters"][namespace]["Default"],
        DEFAULT_NAMESPACE
    );
    let tracing = referenced(&globals["Tracing"]).unwrap();
    let parameter = &template["Parameters"][tracing];
    assert_eq!(parameter["Default"], "PassThrough");
    let allowed: Vec<_> = parameter["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(allowed, ["Active", "PassThrough"]);
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let properties = &function["Properties"];
        assert!(
            properties.get("Tracing").is_none(),
            "{id} sets its own Tracing"
        );
        assert!(
            properties["Environment"]["Variables"]
                .get("METRICS_NAMESPACE")
                .is_none(),
            "{id} sets its own METRICS_NAMESPACE"
        );
    }
}
