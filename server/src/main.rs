/// mimalloc instead of the C library's allocator: a request allocates and frees many small
/// buffers across tokio's threads, where glibc's arenas cost about 7 % of a refresh's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = baton_server::config::Config::load();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        // PostgreSQL's notices (`relation ... already exists, skipping`) are not the operator's
        // business at info level.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    // Standard error is written by a thread of its own: a stalled reader never stalls requests.
    let (stderr, _flush_at_exit) = baton_server::logs::stderr();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr);
    match config.log_format {
        baton_server::config::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        baton_server::config::LogFormat::Text => {
            use std::io::IsTerminal;
            logs.with_ansi(std::io::stderr().is_terminal()).init()
        }
    }
    use baton_server::config::{Command, KeysAction};
    if let Some(Command::Keys {
        action: KeysAction::Rotate,
    }) = &config.command
    {
        return match baton_server::rotate_keys(&config).await {
            Ok((kid, _)) => {
                println!(
                    "new signing key {kid}: published now; running instances sign with it in \
                     {} (BATON_KEY_PUBLISH_AHEAD) and up to {} s; the previous key verifies \
                     until its tokens expire",
                    humantime::format_duration(config.key_publish_ahead),
                    baton_server::KEY_RELOAD.as_secs()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("baton-server keys rotate: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Admin { action }) = &config.command {
        return match baton_server::app::admin_cli::run(config.clone(), action).await {
            Ok(out) => {
                println!("{out}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("baton-server admin: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Migrate) = &config.command {
        return match baton_server::migrate(&config).await {
            Ok(ran) => {
                println!("database migrated: {ran} migration(s) applied, schema up to date");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("baton-server migrate: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match baton_server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
