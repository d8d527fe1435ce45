//! Tells the crate why `--cfg madsim` is missing, when it is, so that the compile error
//! in `src/lib.rs` names the cause: a `RUSTFLAGS` variable that replaced the configured
//! flags, or a crate without the `.cargo/config.toml` that sets them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(faultline_rustflags_env)");
    println!("cargo::rerun-if-env-changed=RUSTFLAGS");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if rustflags_variable_set() {
        println!("cargo::rustc-cfg=faultline_rustflags_env");
    }
}

/// Whether the build runs with a `RUSTFLAGS` (or `CARGO_ENCODED_RUSTFLAGS`) variable,
/// which takes the place of every `.cargo/config.toml`'s `build.rustflags`. Cargo
/// removes `RUSTFLAGS` from a build script's environment, so this reads cargo's own:
/// the environment of this script's parent process, on Linux. Elsewhere it says no,
/// and the error names the configuration file, the usual cause.
#[cfg(unix)]
fn rustflags_variable_set() -> bool {
    let parent = std::os::unix::process::parent_id();
    let Ok(environ) = std::fs::read(format!("/proc/{parent}/environ")) else {
        return false;
    };
    environ.split(|&b| b == 0).any(|entry| {
        entry.starts_with(b"RUSTFLAGS=") || entry.starts_with(b"CARGO_ENCODED_RUSTFLAGS=")
    })
}

#[cfg(not(unix))]
fn rustflags_variable_set() -> bool {
    false
}
