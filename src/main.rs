use agentplane::{api, asyncapi, config::Config, db, server};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "agentplane",
    version,
    about = "PostgreSQL control plane for AI-agent platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP + WebSocket server (the default).
    Serve {
        /// Run the self-managed PostgreSQL (no DATABASE_URL) with fsync,
        /// synchronous_commit and full_page_writes off: faster, and a crash
        /// can lose answered writes or corrupt the data. For throwaway use.
        #[arg(long)]
        unsafe_fast_storage: bool,
    },
    /// Apply migrations and the sql/ files, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi {
        /// Write it to openapi/openapi.json instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Print the AsyncAPI document of the live feed.
    Asyncapi {
        /// Write it to openapi/asyncapi.json instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Print the schema a new database gets from the migrations (tables,
    /// constraints, indexes), read from a scratch database on the server.
    Schema {
        /// Write it to docs/schema.sql instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown once).
    Create {
        #[arg(long, value_parser = ["admin", "service", "reader"])]
        role: String,
        /// Bind the key to one user id.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn main() -> ExitCode {
    agentplane::telemetry::logging::init_from_env();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve {
        unsafe_fast_storage: false,
    });
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentplane: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Openapi { write } => return document(api::spec_json(), "openapi.json", write),
        Command::Asyncapi { write } => {
            return document(asyncapi::asyncapi_json(), "asyncapi.json", write)
        }
        _ => {}
    }
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    match command {
        Command::Serve {
            unsafe_fast_storage,
        } => {
            config.unsafe_fast_storage = unsafe_fast_storage;
            server::serve(config).await.map_err(|e| e.to_string())
        }
        Command::Migrate => server::migrate(&config).await.map_err(|e| e.to_string()),
        Command::Keys {
            command: KeysCommand::Create { role, user, name },
        } => create_key(&config, &role, user.as_deref(), &name).await,
        Command::Schema { write } => schema(&config, write).await,
        Command::Openapi { .. } | Command::Asyncapi { .. } => Ok(()),
    }
}

/// Prints a generated document, or writes it to openapi/<file>.
fn document(text: String, file: &str, write: bool) -> Result<(), String> {
    if write {
        std::fs::create_dir_all("openapi").map_err(|e| e.to_string())?;
        std::fs::write(format!("openapi/{file}"), text).map_err(|e| e.to_string())?;
        eprintln!("wrote openapi/{file}");
    } else {
        print!("{text}");
    }
    Ok(())
}

async fn create_key(
    config: &Config,
    role: &str,
    user: Option<&str>,
    name: &str,
) -> Result<(), String> {
    let database = server::resolve_database(config)
        .await
        .map_err(|e| e.to_string())?;
    db::migrate::run(&database.url)
        .await
        .map_err(|e| e.to_string())?;
    let client = db::connect(&database.url, "agentplane-cli")
        .await
        .map_err(|e| e.to_string())?;
    let secret = api::auth::new_secret();
    let row = db::keys::create(&client, name, role, user, &api::auth::hash_key(&secret))
        .await
        .map_err(|e| e.mapped().message)?;
    println!("{secret}");
    eprintln!("created {} key {} ({})", row.role, row.id, row.name);
    Ok(())
}

/// `agentplane schema [--write]`.
async fn schema(config: &Config, write: bool) -> Result<(), String> {
    let database = server::resolve_database(config)
        .await
        .map_err(|e| e.to_string())?;
    let text = db::schema::of_fresh_database(&database.url)
        .await
        .map_err(|e| e.to_string())?;
    if write {
        std::fs::write("docs/schema.sql", text).map_err(|e| e.to_string())?;
        eprintln!("wrote docs/schema.sql");
    } else {
        print!("{text}");
    }
    Ok(())
}
