//! `yunshu`: serve the control plane, or print its version.

fn main() -> anyhow::Result<()> {
    yunshu_runtime::cli::main()
}
