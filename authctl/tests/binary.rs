//! The quickest proof that the binary runs at all; the CLI tests in `cli`,
//! `cli_aws` and `cli_release` hold the real checks.

use std::process::Command;

#[test]
fn the_binary_starts_and_names_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("authctl "));
}
