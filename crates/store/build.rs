//! Compiles `proto/pathinfo.proto` with protox (pure Rust, no system
//! `protoc`) and generates the prost messages and tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pathinfo.proto");
    let fds = protox::compile(["pathinfo.proto"], ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
