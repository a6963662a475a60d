fn main() -> std::process::ExitCode {
    grattr::cli::main()
}
