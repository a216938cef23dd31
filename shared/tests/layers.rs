//! The layering of `shared/src` held by a test, not by hope: each folder's
//! code names nothing of the layers it must not depend on. Comments may
//! mention other layers (docs link to them); code may not.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// What a file in each folder may not name, and why.
const RULES: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "aws_config",
            "aws_sdk_",
            "aws_smithy",
            "serde_dynamo",
            "lambda_http",
            "lambda_runtime",
            "hyper",
            "rusqlite",
            "crate::http",
            "crate::authorizer",
            "crate::aws",
            "crate::local",
        ],
    ),
    (
        "http",
        &[
            "aws_config",
            "aws_sdk_",
            "serde_dynamo",
            "rusqlite",
            "crate::aws",
            "crate::local",
            "crate::authorizer",
        ],
    ),
    (
        "authorizer",
        &[
            "aws_config",
            "aws_sdk_",
            "rusqlite",
            "crate::aws",
            "crate::local",
        ],
    ),
    (
        "aws",
        &[
            "lambda_http",
            "hyper",
            "rusqlite",
            "crate::http",
            "crate::local",
        ],
    ),
    (
        "local",
        &[
            "aws_config",
            "aws_sdk_",
            "lambda_http",
            "hyper",
            "crate::http",
            "crate::aws",
        ],
    ),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `(file, line number, name)` for every code line naming a forbidden name.
fn violations(folder: &str, forbidden: &[&str]) -> Vec<(PathBuf, usize, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let files = rust_files(&dir);
    assert!(!files.is_empty(), "no sources in {}", dir.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for name in forbidden.iter().filter(|name| code.contains(*name)) {
                found.push((file.clone(), number + 1, (*name).to_owned()));
            }
        }
    }
    found
}

#[test]
fn each_layer_names_nothing_of_the_layers_it_must_not_depend_on() {
    let found: Vec<_> = RULES
        .iter()
        .flat_map(|(folder, forbidden)| violations(folder, forbidden))
        .collect();
    assert!(found.is_empty(), "layering broken: {found:#?}");
}

#[test]
fn the_check_sees_a_forbidden_name_where_there_is_one() {
    // The AWS layer does name the SDK: the same scan over it must find that.
    let found = violations("aws", &["aws_sdk_dynamodb"]);
    assert!(!found.is_empty(), "the scan reads no code");
}
