//! The `grattr` binary: everything is in the library; this picks the allocator.

// mimalloc, as ruff and uv ship: planning 100,000 groups allocates millions of
// small strings across rayon's threads, where musl's allocator (in the static
// Linux builds) is several times slower than glibc's, and mimalloc beats both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    grattr::cli::main()
}
