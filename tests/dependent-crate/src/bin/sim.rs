fn main() -> std::process::ExitCode {
    faultline::cli::Cli::new().protocol::<ticker::Tickers>().run()
}
