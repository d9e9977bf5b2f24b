//! Start-up: command line and config file (Redis's format and directive
//! names), logging, listeners, signals, and graceful shutdown.

use crate::conn;
use granary_commands::config::Config;
use granary_commands::{Server, GRANARY_VERSION, REDIS_VERSION};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Options {
    pub config: Config,
}

const USAGE: &str = "Usage: granary [/path/to/granary.conf] [--option value ...]
       granary --version
       granary --help

Options are Redis's configuration directives, e.g.
       granary --port 7777 --requirepass secret --save ''
       granary /etc/granary.conf --loglevel verbose";

/// One directive line: its name and arguments, with where it came from.
struct Directive {
    name: String,
    args: Vec<String>,
    origin: Option<(PathBuf, usize, String)>,
}

/// Parses `granary [configfile] [--name args...]` like redis-server does:
/// each `--name` starts a directive and the words after it are its arguments.
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut rest = args;
    let mut file = None;
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") => {
            println!("Granary server v={GRANARY_VERSION} redis_version={REDIS_VERSION}");
            std::process::exit(0);
        }
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(f) if !f.starts_with("--") => {
            file = Some(PathBuf::from(f));
            rest = &args[1..];
        }
        _ => {}
    }
    let mut directives = vec![];
    if let Some(f) = &file {
        read_config_file(f, &mut directives, 0)?;
    }
    let mut cur: Option<Directive> = None;
    for a in rest {
        if let Some(name) = a.strip_prefix("--") {
            directives.extend(cur.take());
            cur = Some(Directive {
                name: name.to_string(),
                args: vec![],
                origin: None,
            });
        } else if let Some(d) = &mut cur {
            d.args.push(a.clone());
        } else {
            return Err(format!("Invalid argument '{a}'\n{USAGE}"));
        }
    }
    directives.extend(cur.take());
    let abs_file = file.map(|f| std::fs::canonicalize(&f).unwrap_or(f));
    let config = Config::new(abs_file);
    for d in directives {
        apply(&config, &d)?;
    }
    Ok(Options { config })
}

fn read_config_file(path: &Path, out: &mut Vec<Directive>, depth: usize) -> Result<(), String> {
    if depth > 8 {
        return Err(format!("Too many nested includes at {}", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "Fatal error, can't open config file '{}': {e}",
            path.display()
        )
    })?;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let origin = Some((path.to_path_buf(), n + 1, line.to_string()));
        let Some(words) = granary_protocol::split_inline_args(trimmed.as_bytes()) else {
            return Err(config_error(
                &origin,
                "Unbalanced quotes in configuration line",
            ));
        };
        let mut words = words
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned());
        let name = words.next().unwrap_or_default();
        let args: Vec<String> = words.collect();
        if name.eq_ignore_ascii_case("include") && args.len() == 1 {
            read_config_file(Path::new(&args[0]), out, depth + 1)?;
            continue;
        }
        out.push(Directive { name, args, origin });
    }
    Ok(())
}

/// Redis's format for a bad line, naming file, line and text.
fn config_error(origin: &Option<(PathBuf, usize, String)>, msg: &str) -> String {
    match origin {
        Some((file, n, line)) => format!(
            "\n*** FATAL CONFIG FILE ERROR (Granary {GRANARY_VERSION}) ***\nReading the configuration file {}, at line {n}\n>>> '{}'\n{msg}",
            file.display(),
            line.trim()
        ),
        None => format!("\n*** FATAL CONFIG ERROR (Granary {GRANARY_VERSION}) ***\n{msg}"),
    }
}

fn apply(config: &Config, d: &Directive) -> Result<(), String> {
    let name = d.name.to_ascii_lowercase();
    let Some(param) = granary_commands::config::find(&name) else {
        return Err(config_error(
            &d.origin,
            &format!("Bad directive or wrong number of arguments ('{}')", d.name),
        ));
    };
    let multi = matches!(
        param.name,
        "save" | "bind" | "client-output-buffer-limit" | "writebehind-rule"
    );
    if d.args.is_empty() || (!multi && d.args.len() != 1) {
        return Err(config_error(
            &d.origin,
            &format!("wrong number of arguments for '{}'", d.name),
        ));
    }
    let mut value = d.args.join(" ");
    if param.name == "writebehind-rule" {
        // Repeatable: each line adds a rule to those before it.
        let before = config.get(param.name).unwrap_or_default();
        if !before.is_empty() {
            value = format!("{before}; {value}");
        }
    }
    config
        .set(&name, &value, true)
        .map_err(|e| config_error(&d.origin, &format!("'{}' {e}", d.name)))
}

/// Logs to standard output, or to `logfile` (appending) as Redis does.
fn init_logging(level: &str, logfile: &str) -> Result<(), String> {
    let filter = match level {
        "debug" => "debug",
        "verbose" | "notice" => "info",
        "warning" => "warn",
        _ => "error",
    };
    let filter = std::env::var("GRANARY_LOG").unwrap_or_else(|_| filter.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if logfile.is_empty() {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let _ = builder.with_ansi(ansi).try_init();
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
            .map_err(|e| format!("Can't open the log file '{logfile}': {e}"))?;
        let _ = builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    }
    Ok(())
}

/// Runs the server until SHUTDOWN or a signal; returns the exit code.
pub fn run(opts: Options) -> i32 {
    let config = opts.config;
    let logfile = config.get("logfile").unwrap_or_default();
    if let Err(e) = init_logging(&config.get("loglevel").unwrap_or_default(), &logfile) {
        eprintln!("{e}");
        return 1;
    }
    if let Some(dir) = config.get("dir").filter(|d| !d.is_empty()) {
        if let Err(e) = std::env::set_current_dir(&dir) {
            tracing::error!("Can't chdir to '{dir}': {e}");
            return 1;
        }
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("can't start the runtime: {e}");
            return 1;
        }
    };
    let server = Arc::new(Server::new(config));
    let code = rt.block_on(serve(server.clone(), threads));
    // SHUTDOWN NOSAVE during a busy script: the script's thread never
    // returns, and dropping the runtime would wait for it forever.
    if server.scripting.busy.active() {
        rt.shutdown_background();
    }
    code
}

async fn serve(server: Arc<Server>, threads: usize) -> i32 {
    // Data first: clients are accepted once the dataset is in memory.
    let loaded = if server.config.get_bool("appendonly") {
        granary_commands::aof::load_at_startup(&server).map(|_| ())
    } else {
        granary_commands::rdb::load_at_startup(&server).map(|_| ())
    };
    if let Err(e) = loaded {
        tracing::error!("{e}");
        return 1;
    }
    granary_commands::rdb::start(&server);
    granary_commands::aof::start(&server);
    if let Err(e) = granary_commands::cmd::writebehind::start(&server) {
        tracing::error!("{e}");
        return 1;
    }
    let port = server.config.get_int("port") as u16;
    let binds = server.config.get("bind").unwrap_or_default();
    let mut listeners = vec![];
    for addr in binds.split_whitespace() {
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        let sock: SocketAddr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                tracing::error!("Invalid bind address '{host}'");
                return 1;
            }
        };
        match TcpListener::bind(sock).await {
            Ok(l) => listeners.push(l),
            Err(e) if optional => tracing::debug!("Skipping optional bind {sock}: {e}"),
            Err(e) => {
                tracing::error!(
                    "Warning: Could not create server TCP listening socket {sock}: {e}"
                );
                return 1;
            }
        }
    }
    if listeners.is_empty() {
        tracing::error!("Failed listening on port {port} (tcp), aborting.");
        return 1;
    }
    let actual_port = listeners[0].local_addr().map(|a| a.port()).unwrap_or(port);
    server.tcp_port.store(actual_port as u64, Relaxed);
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    tracing::info!(
        "Granary {GRANARY_VERSION} (Redis {REDIS_VERSION} compatible) pid={} threads={threads} databases={} requirepass={} maxmemory={} dir={}",
        std::process::id(),
        server.keyspace.databases(),
        if server.config.hot.has_password.load(Relaxed) { "set" } else { "none" },
        server.config.get("maxmemory").unwrap_or_default(),
        std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
    );
    tracing::info!("Ready to accept connections tcp on {}", addrs.join(", "));
    granary_commands::cron::start(&server);
    let only_loopback = listeners.iter().all(|l| {
        l.local_addr()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false)
    });
    for l in listeners {
        tokio::spawn(conn::accept_loop(server.clone(), l, only_loopback));
    }
    let mut stop = server.shutdown_signal();
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        let signalled = tokio::select! {
            _ = stop.wait_for(|v| *v) => {
                tracing::info!("User requested shutdown...");
                false
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("Received SIGINT scheduling shutdown...");
                true
            }
            _ = async {
                match &mut sigterm {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            } => {
                tracing::info!("Received SIGTERM scheduling shutdown...");
                true
            }
        };
        // SHUTDOWN saved already; a signal saves here (a failed save keeps
        // the server up, as in Redis).
        if !signalled || save_on_signal(&server).await {
            break;
        }
        tracing::warn!("SIGTERM received but errors trying to shut down the server, check the logs for more information");
    }
    server.request_shutdown();
    tracing::info!("Granary is now ready to exit, bye bye...");
    0
}

/// The final save a signal asks for, off the async workers.
async fn save_on_signal(server: &Arc<Server>) -> bool {
    let s = server.clone();
    tokio::task::spawn_blocking(move || granary_commands::rdb::save_for_shutdown(&s, false, false))
        .await
        .unwrap_or(false)
}
