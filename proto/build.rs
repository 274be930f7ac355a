//! Compiles every `.proto` under `yunshu/` into Rust (messages, clients and
//! servers) and writes a file descriptor set for gRPC reflection.
//!
//! Needs `protoc` on `PATH` (or in `PROTOC`); the google.protobuf well-known
//! types map to `prost-types`.

use std::{
    env, fs, io,
    path::{Path, PathBuf},
};

/// The directory of the protos, relative to this crate; also the include root.
const PROTO_ROOT: &str = "yunshu";

fn main() -> io::Result<()> {
    let mut protos = Vec::new();
    find_protos(Path::new(PROTO_ROOT), &mut protos)?;
    protos.sort();

    // A new or removed file changes the set, not just a listed file's contents.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let out_dir = PathBuf::from(
        env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR is not set"))?,
    );
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out_dir.join("yunshu_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from(".")])
}

/// Collects every `.proto` file under `dir`, recursively.
fn find_protos(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            find_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
