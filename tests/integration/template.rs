//! `template.yaml`'s route throttles: each one a parameter with a default,
//! so no ceiling is fixed in the template (docs/scaling.md sizes them).

use std::path::Path;

use serde_norway::Value as Yaml;

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
