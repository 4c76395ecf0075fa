//! Finding the Lambda binaries, flat or in cargo-lambda's layout.
use std::path::Path;
use std::time::Duration;

use ylambda::LambdasConfig;

use crate::common::*;

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn binaries_are_found_flat_or_in_cargo_lambdas_layout() {
    let dir = tempfile::tempdir().unwrap();
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("ylambda-connect"), "{error}");
    assert!(error.contains("bootstrap"), "{error}");

    // target/debug: flat. target/lambda: one folder per function with a bootstrap.
    make_executable(&dir.path().join("ylambda-connect"));
    make_executable(&dir.path().join("ylambda-disconnect/bootstrap"));
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("no ylambda-message executable"), "{error}");
    make_executable(&dir.path().join("ylambda-message/bootstrap"));
    let config = LambdasConfig::from_dir(dir.path()).expect("all three found");
    assert_eq!(config.connect.path, dir.path().join("ylambda-connect"));
    assert_eq!(
        config.disconnect.path,
        dir.path().join("ylambda-disconnect/bootstrap")
    );
    assert_eq!(config.concurrency, 2);
    assert_eq!(config.timeout, Duration::from_secs(29));

    std::fs::write(dir.path().join("ylambda-connect"), "not executable").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("ylambda-connect"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let error = LambdasConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains("is not executable"), "{error}");
}

#[tokio::test]
async fn dev_with_missing_lambdas_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ylambda"))
        .args(["dev", "--listen", "127.0.0.1:0", "--lambdas"])
        .arg(dir.path())
        .env_remove("YLAMBDA_BACKEND")
        .output();
    let out = tokio::time::timeout(SOON, out)
        .await
        .expect("exits")
        .expect("run ylambda");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(stderr.contains("--lambdas"), "{stderr}");
    assert!(stderr.contains("ylambda-connect"), "{stderr}");
}
