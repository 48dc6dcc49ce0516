//! `ferrix store daemon`: serve a store over gRPC (castore and path infos on
//! one port) until SIGINT or SIGTERM, so other processes use it as
//! `--store grpc+http://ADDR`.

use std::net::SocketAddr;

use anyhow::Context;
use ferrix_store::open_store;

/// Opens `backend`, binds `listen`, prints `listening on grpc+http://ADDR`
/// (the real port when `listen` asks for port 0) on stdout and serves.
pub fn run(listen: SocketAddr, backend: &str) -> anyhow::Result<()> {
    let store = open_store(backend).with_context(|| format!("opening store {backend}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("ferrix-store-daemon")
        .enable_all()
        .build()
        .context("starting the daemon's runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on grpc+http://{addr}")?;
            out.flush()?;
        }
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        ferrix_store::server::serve_with_shutdown(&store, listener, shutdown)
            .await
            .with_context(|| format!("serving {backend} on {addr}"))
    })?;
    // Open calls are done: dropping the store makes everything durable.
    drop(store);
    Ok(())
}
