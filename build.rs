//! Tells the crate why `--cfg madsim` is missing, when it is, so that the compile error
//! in `src/lib.rs` names the cause: a `RUSTFLAGS` variable that replaced the
//! configured flags, or a crate without the `.cargo/config.toml` that sets them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(faultline_rustflags_env)");
    println!("cargo::rerun-if-env-changed=RUSTFLAGS");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    // Cargo takes RUSTFLAGS over the `build.rustflags` of every .cargo/config.toml;
    // it passes its own environment on to build scripts.
    if std::env::var_os("RUSTFLAGS").is_some() {
        println!("cargo::rustc-cfg=faultline_rustflags_env");
    }
}
