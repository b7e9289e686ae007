//! The `parapet` command line: parse arguments, set up logging, load config, run.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parapet::config::{self, LogFormat};

/// mimalloc instead of glibc malloc: the proxy allocates on Tokio workers and frees on the
/// event writer thread (and back), which glibc's arenas handle poorly (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "parapet",
    version,
    about = "Inline guardrail proxy for AI traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (for the default `serve` command).
    #[arg(
        long,
        short,
        env = "PARAPET_CONFIG",
        default_value = "parapet.toml",
        global = true
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default command).
    Serve,
    /// Load the configuration and everything it references; print every error; exit non-zero on any.
    Validate {
        /// Check only this policy directory (no configuration file needed): the policy
        /// author's check before a reload.
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Print the `sha256:` hash of a virtual key (argument, or stdin) for `[[keys]]`.
    HashKey {
        /// The key; read from stdin when omitted.
        key: Option<String>,
    },
    /// Scan text from stdin with a policy directory: print matches (rule, offsets) and the
    /// redacted text.
    Scan {
        /// Policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Evaluate the rules of this side.
        #[arg(long, default_value = "request", value_parser = ["request", "response"])]
        direction: String,
        /// Route id for rule selectors.
        #[arg(long, default_value = "*")]
        route: String,
        /// Model for rule selectors.
        #[arg(long)]
        model: Option<String>,
    },
    /// Verify the event store's hash chains offline (stop Parapet first, or verify a copy):
    /// prints each workspace's head or its first broken link; exit 1 if any is broken.
    Verify {
        /// The store directory (`[store] data_dir`).
        #[arg(long)]
        data: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score the built-in detectors on a labeled data set (e.g. ../shared/eval).
    Eval {
        /// Directory with pii/, secrets/, injection/.
        dir: PathBuf,
        /// Score the detectors a policy directory uses (e.g. the shipped `policies/`)
        /// instead of every built-in detector.
        #[arg(long)]
        policies: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Validate { policies: None } => validate(cli.config),
        Command::Validate {
            policies: Some(dir),
        } => validate_policies(&dir),
        Command::HashKey { key } => hash_key(key),
        Command::Scan {
            policies,
            direction,
            route,
            model,
        } => scan(&policies, &direction, &route, model.as_deref()),
        Command::Verify { data, json } => verify(&data, json),
        Command::Eval { dir, policies } => match eval(&dir, policies.as_deref())
            .and_then(|report| Ok((report, parapet::eval::stream_check(&dir)?)))
        {
            Ok((report, streaming)) => {
                println!("{report}");
                println!("{streaming}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The evaluation of every built-in detector, or of those a policy directory uses.
fn eval(
    dir: &std::path::Path,
    policies: Option<&std::path::Path>,
) -> Result<parapet::eval::EvalReport, parapet::eval::EvalError> {
    let Some(pdir) = policies else {
        return parapet::eval::run(dir);
    };
    let set =
        parapet::guard::policy::load_dir(pdir, &|v| std::env::var(v).ok()).map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            parapet::eval::EvalError::Policies(all.join("; "))
        })?;
    match set.scanner() {
        Some(scanner) => parapet::eval::run_with(scanner, dir),
        None => Err(parapet::eval::EvalError::Policies(format!(
            "{} has no rules to evaluate",
            pdir.display()
        ))),
    }
}

fn scan(dir: &std::path::Path, direction: &str, route: &str, model: Option<&str>) -> ExitCode {
    use parapet::guard::{Ctx, Locations, Outcome, Pass, Side};
    let set = match parapet::guard::policy::load_dir(dir, &|v| std::env::var(v).ok()) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("error: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let side = if direction == "response" {
        Side::Response
    } else {
        Side::Request
    };
    let app = set.applicable(&Ctx { side, route, model });
    let loc = if side == Side::Response {
        Locations::ASSISTANT
    } else {
        Locations::USER
    };
    let mut out = Outcome::default();
    let mut redactor = parapet::redact::Redactor::new();
    let mut pass = Pass {
        app: &app,
        side,
        redactor: &mut redactor,
        out: &mut out,
    };
    let redacted = set.guard_text(&text, loc, &|| "stdin".into(), &mut pass);
    let mut report = String::new();
    for v in &out.violations {
        report.push_str(&format!(
            "match\t{}\t{}\t{}..{}\taction={}\tseverity={}{}\n",
            v.rule_id,
            v.kind,
            v.start,
            v.end,
            v.action,
            v.severity,
            if v.enforced { "" } else { "\tmonitor" }
        ));
    }
    if let Some((status, rules)) = &out.deny {
        let ids: Vec<&str> = rules.iter().map(|r| &**r).collect();
        report.push_str(&format!(
            "decision\tdeny\tstatus={status}\trules={}\n",
            ids.join(",")
        ));
    } else {
        report.push_str("decision\tallow\n");
    }
    report.push_str("---\n");
    report.push_str(redacted.as_deref().unwrap_or(&text));
    // A reader that stops early (`| head`) is not an error; other write errors are.
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(report.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(path: PathBuf) -> ExitCode {
    let c = match config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s) in {}", errors.0.len(), path.display());
            return ExitCode::FAILURE;
        }
    };
    match parapet::guard::policy::load_dir(&c.policies.dir, &|v| std::env::var(v).ok()) {
        Ok(p) => {
            println!(
                "ok: {}: {} endpoints, {} routes, {} keys; {}: {} policy files, {} rules (version {})",
                path.display(),
                c.endpoints.len(),
                c.routes.len(),
                c.keys.len(),
                c.policies.dir.display(),
                p.files().len(),
                p.rules().len(),
                p.version()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{} error(s) in policies at {}",
                errors.len(),
                c.policies.dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `parapet validate --policies DIR`: compile one policy directory, print every error.
fn validate_policies(dir: &std::path::Path) -> ExitCode {
    match parapet::guard::policy::load_dir(dir, &|v| std::env::var(v).ok()) {
        Ok(p) => {
            println!(
                "ok: {}: {} policy files, {} rules (version {})",
                dir.display(),
                p.files().len(),
                p.rules().len(),
                p.version()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s) in policies at {}", errors.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

fn verify(data: &std::path::Path, json: bool) -> ExitCode {
    let reports = match parapet::store::verify_dir(data) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ok = reports.iter().all(|r| r.broken.is_none());
    if json {
        let v = serde_json::json!({"ok": ok, "workspaces": reports});
        println!("{v}");
    } else {
        for r in &reports {
            match &r.broken {
                None => println!(
                    "ok\t{}\trecords={}\thead_seq={}\thead={}",
                    r.workspace,
                    r.records,
                    r.head.as_ref().map_or(0, |h| h.seq),
                    r.head.as_ref().map_or("-", |h| h.chain_hash.as_str())
                ),
                Some(b) => println!(
                    "BROKEN\t{}\tseq={}\tevent_id={}\t{}",
                    r.workspace,
                    b.seq,
                    b.event_id.as_deref().unwrap_or("-"),
                    b.reason
                ),
            }
        }
        println!(
            "{}",
            if ok {
                "verified"
            } else {
                "verification FAILED"
            }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn hash_key(key: Option<String>) -> ExitCode {
    let key = match key {
        Some(k) => k,
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("error: cannot read stdin: {e}");
                return ExitCode::FAILURE;
            }
            s
        }
    };
    let key = key.trim();
    if key.is_empty() {
        eprintln!("error: empty key");
        return ExitCode::FAILURE;
    }
    println!("{}", parapet::auth::KeyHash::of(key.as_bytes()).to_hex());
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(path: PathBuf) -> ExitCode {
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "parapet: not started: {} configuration error(s)",
                errors.0.len()
            );
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parapet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match parapet::Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "not started");
                return ExitCode::FAILURE;
            }
        };
        parapet::server::shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
