//! Cargo builds a package's binaries only for that package's integration
//! tests. This one makes `cargo test --workspace` build `target/debug/authctl`
//! fresh, which the CLI tests in `auth-tests` run; those hold the real checks.

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
