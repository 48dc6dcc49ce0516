//! Compiles `proto/castore.proto` with protox (pure Rust, no system `protoc`)
//! and generates the prost messages and tonic client and server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/castore.proto");
    let fds = protox::compile(["castore.proto"], ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
