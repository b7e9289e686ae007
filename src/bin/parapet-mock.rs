//! `parapet-mock`: the mock OpenAI/Anthropic upstream as a standalone process (SDK tests, load harness).
//!
//! Prints exactly one line, `listening on http://IP:PORT`, once it accepts connections,
//! and exits on SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use parapet::mock::{MockConfig, MockUpstream};

#[derive(Debug, Parser)]
#[command(
    name = "parapet-mock",
    about = "Mock OpenAI/Anthropic upstream for Parapet tests and benchmarks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Fixed delay in milliseconds before every response head.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Do not record requests (constant memory for load tests; /__mock/requests stays empty).
    #[arg(long)]
    no_record: bool,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parapet-mock: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let cfg = MockConfig {
        listen: args.listen,
        latency: Duration::from_millis(args.latency_ms),
        record: !args.no_record,
        ..MockConfig::default()
    };
    let mock = match MockUpstream::start(cfg).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("parapet-mock: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening on {}", mock.url())
        .and_then(|()| out.flush())
        .is_err()
    {
        // Nobody reads our stdout any more; keep serving regardless.
    }
    drop(out);
    parapet::server::shutdown_signal().await;
    mock.shutdown().await;
    ExitCode::SUCCESS
}
