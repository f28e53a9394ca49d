//! Names the build for `layerinv --version`: the package version, the commit it was built from
//! (`git rev-parse`, else `$LAYERINV_COMMIT`, else "unknown") and the compiled features.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LAYERINV_COMMIT");
    for f in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    let git = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let commit = git.or_else(|| std::env::var("LAYERINV_COMMIT").ok()).unwrap_or_else(|| "unknown".into());
    let features: Vec<&str> =
        [("gui", "CARGO_FEATURE_GUI"), ("cuda", "CARGO_FEATURE_CUDA"), ("cudnn", "CARGO_FEATURE_CUDNN")]
            .into_iter()
            .filter(|(_, var)| std::env::var_os(var).is_some())
            .map(|(name, _)| name)
            .collect();
    let features = if features.is_empty() { "none".to_string() } else { features.join(", ") };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=LAYERINV_VERSION={version} (commit {commit}; features: {features})");
}
