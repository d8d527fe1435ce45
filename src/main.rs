fn main() -> std::process::ExitCode {
    // Die quietly when stdout is a closed pipe (`faultline replay ... | head`), as
    // command-line tools do, instead of panicking on a failed print.
    // SAFETY: restoring the default disposition of a signal at start-up, before any
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    faultline::cli::main()
}
