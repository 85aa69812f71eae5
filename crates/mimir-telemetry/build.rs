//! Records the git commit the binary is built from, for `mimir_build_info`.

fn main() {
    let commit = std::env::var("MIMIR_GIT_COMMIT").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=MIMIR_BUILD_COMMIT={}",
        commit
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=MIMIR_GIT_COMMIT");
    // Rebuild when HEAD moves (no-op outside a git checkout).
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
}
