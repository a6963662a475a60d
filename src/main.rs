//! The `grattr` binary: everything is in the library; this picks the allocator.

// mimalloc, as ruff and uv ship: planning 100,000 groups allocates millions of
// small strings across rayon's threads, where musl's allocator (the static Linux
// builds) took 9-10 s against glibc's 1.6 s; with mimalloc both take 1.5 s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    grattr::cli::main()
}
