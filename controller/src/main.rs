//! `yunshu`: serve the control plane, or print its version.

// mimalloc: every call allocates and frees many small buffers across the
// runtime's threads; in grpc-bench a call cost about a tenth less CPU than
// with the system allocator. The bench uses it too, so it measures what
// this binary runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    yunshu_runtime::cli::main()
}
