//! Entry point: parse flags, build the context, run, map errors to exit codes.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use sts_safe::cli::{Cli, Command};
use sts_safe::commands;
use sts_safe::context::Ctx;
use sts_safe::error::exit;
use sts_safe::render;

fn main() {
    // cobra's convention, which kubectl_complete-sts_safe also answers: complete a line.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__complete") {
        std::process::exit(sts_safe::complete::main(&args[2..]));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => std::process::exit(usage_error(e)),
    };
    render::init_colors(cli.global.no_color);
    init_tracing(cli.global.verbose);
    if let Command::Completion(a) = &cli.command {
        commands::completion::run(a);
        return;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = runtime.block_on(async {
        let result = async {
            let ctx = Ctx::from_args(&cli.global).await?;
            commands::run(&ctx, &cli.command).await
        }
        .await;
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    });
    // Do not wait for watch streams still winding down.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}

/// Help and version go to stdout with exit 0; anything else is one line on stderr, exit 2.
fn usage_error(e: clap::Error) -> i32 {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return exit::OK;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return exit::USAGE;
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let mut line = first;
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        line.push_str(&format!(" (possible values: {})", valid.join(", ")));
    }
    if e.kind() == ErrorKind::MissingRequiredArgument {
        if let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) {
            line = format!("{}: {}", line.trim_end_matches(':'), missing.join(", "));
        }
    }
    eprintln!("error: {line}; see 'kubectl sts-safe --help'");
    exit::USAGE
}

/// Tracing to stderr. HTTP, TLS and connection internals stay quiet at every level so
/// that bearer tokens and client keys can never be logged.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = format!("sts_safe={level},kubectl_sts_safe={level},kube_client={level},kube_runtime={level},kube={level},hyper=off,hyper_util=off,rustls=off,h2=off,tower=off,tower_http=off");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(
            console::colors_enabled_stderr()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .with_target(false)
        .try_init();
}
