//! A self-managed PostgreSQL cluster, used when `DATABASE_URL` is unset.
//!
//! It finds the system's server binaries, `initdb`s a data folder (kept
//! between runs), starts the server and stops it when the [`LocalCluster`]
//! is dropped. PostgreSQL refuses to run as root, so as root the server
//! processes run as an unprivileged user (`postgres`, else `nobody`) that
//! owns the data folder.
//!
//! The cluster holds money, so it is closed and durable by default: it
//! listens on no TCP port, only on a Unix socket inside the cluster's folder,
//! which only the folder's owner (and root) may enter; and PostgreSQL's
//! durability settings stay at their defaults. [`Storage::UnsafeFast`]
//! turns durability off for throwaway clusters (tests).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether the cluster survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// PostgreSQL's defaults: every answered commit survives a crash.
    Durable,
    /// `fsync`, `synchronous_commit` and `full_page_writes` off: a crash can
    /// lose answered commits or corrupt the cluster. For throwaway data.
    UnsafeFast,
}

/// The server's port number: it names the socket file (`.s.PGSQL.5432`);
/// no TCP port is opened.
const SOCKET_PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres in \
         AGENTPLANE_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH). \
         Install PostgreSQL's server package (Debian: `apt-get install postgresql`) or set \
         DATABASE_URL to an existing database"
    )]
    NoBinaries,
    #[error("running as root but no unprivileged user (postgres or nobody) exists to own the cluster; create one or set DATABASE_URL")]
    NoUnprivilegedUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Unsafe(String),
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running cluster. Dropping it stops the server (unless it was already
/// running when we found it, in which case someone else owns it).
#[derive(Debug)]
pub struct LocalCluster {
    bindir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    run_as: Option<String>,
    storage: Storage,
    owned: bool,
}

impl LocalCluster {
    /// Starts (creating if needed) the cluster whose files live in `dir`.
    pub fn start(dir: &Path, storage: Storage) -> Result<LocalCluster, LocalPgError> {
        let bindir = find_bindir().ok_or(LocalPgError::NoBinaries)?;
        let run_as = if is_root() {
            Some(unprivileged_user().ok_or(LocalPgError::NoUnprivilegedUser)?)
        } else {
            None
        };
        let dir = absolute(dir)?;
        // The server user must be able to reach the folder; fall back to a
        // folder under the temp dir when an ancestor (e.g. /root) is closed.
        let dir = match &run_as {
            Some(_) if !ancestors_searchable(&dir) => fallback_dir(&dir),
            _ => dir,
        };
        prepare_dir(&dir, run_as.as_deref())?;
        let mut cluster = LocalCluster {
            bindir,
            data: dir.join("data"),
            socket_dir: dir.clone(),
            port: SOCKET_PORT,
            run_as,
            storage,
            owned: true,
        };
        if !cluster.data.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.write_hba()?;
        if let Some(port) = cluster.running_port() {
            tracing::info!(port, data = %cluster.data.display(), "reusing a running local PostgreSQL");
            cluster.port = port;
            cluster.owned = false;
            return Ok(cluster);
        }
        cluster.pg_ctl_start()?;
        tracing::info!(socket = %cluster.socket_dir.display(), data = %cluster.data.display(),
            durable = storage == Storage::Durable, "started local PostgreSQL");
        Ok(cluster)
    }

    /// A connection URL for database `db`: user `postgres` over the Unix
    /// socket in the cluster's folder.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql:///{db}?host={}&port={}&user=postgres",
            self.socket_dir.display(),
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) -> Result<(), LocalPgError> {
        if !self.owned {
            return Ok(());
        }
        self.owned = false;
        self.pg_ctl_stop()
            .map(|_| tracing::info!("stopped local PostgreSQL"))
    }

    /// `pg_ctl stop -m fast`: sessions are ended, and the server waited for.
    fn pg_ctl_stop(&self) -> Result<String, LocalPgError> {
        self.run(
            "pg_ctl stop",
            "pg_ctl",
            &[
                "-D".into(),
                self.data.clone().into(),
                "-m".into(),
                "fast".into(),
                "-w".into(),
                "stop".into(),
            ],
        )
    }

    /// Hands the cluster to a watchdog process that stops it (and deletes
    /// `remove_dir`) once process `owner_pid` exits. For test binaries, which
    /// have no teardown hook: the cluster outlives every test, then goes.
    pub fn stop_when_process_exits(mut self, owner_pid: u32, remove_dir: &Path) {
        if !self.owned {
            return;
        }
        self.owned = false;
        let pg_ctl = self.bindir.join("pg_ctl");
        let as_user = match &self.run_as {
            Some(u) => format!("setpriv --reuid={u} --regid={u} --init-groups "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {owner_pid} 2>/dev/null; do sleep 0.5; done; \
             {as_user}'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
            pg_ctl.display(),
            self.data.display(),
            remove_dir.display()
        );
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the cluster watchdog");
        }
    }

    fn initdb(&self) -> Result<(), LocalPgError> {
        let data = self.data.clone();
        self.run(
            "initdb",
            "initdb",
            &[
                "-D".into(),
                data.into(),
                "--auth-local=trust".into(),
                "--auth-host=reject".into(),
                "-U".into(),
                "postgres".into(),
                "--no-sync".into(),
                "-E".into(),
                "UTF8".into(),
                "--locale=C".into(),
            ],
        )
        .map(|_| ())
    }

    fn pg_ctl_start(&self) -> Result<(), LocalPgError> {
        // No TCP listener: clients come through the socket in the cluster's
        // folder, which only its owner may enter.
        let mut opts = format!(
            "-p {} -c listen_addresses='' -c unix_socket_directories='{}' \
             -c unix_socket_permissions=0700 -c max_connections=300",
            self.port,
            self.socket_dir.display()
        );
        if self.storage == Storage::UnsafeFast {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.data.with_file_name("postgres.log");
        let data = self.data.clone();
        self.run(
            "pg_ctl start",
            "pg_ctl",
            &[
                "-D".into(),
                data.into(),
                "-o".into(),
                opts.into(),
                "-l".into(),
                log.into(),
                "-w".into(),
                "-t".into(),
                "60".into(),
                "start".into(),
            ],
        )
        .map(|_| ())
    }

    /// Only socket connections, and only trusted because the socket's
    /// folder is closed to everyone but the owner. Written on every start,
    /// so a folder made by an older version is closed too.
    fn write_hba(&self) -> Result<(), LocalPgError> {
        let hba = self.data.join("pg_hba.conf");
        let text = "# Written by agentplane: socket connections only; the socket's folder\n\
                    # is open to its owner alone.\nlocal all all trust\n";
        std::fs::write(&hba, text).map_err(|source| LocalPgError::Io {
            path: hba.clone(),
            source,
        })?;
        if let Some(user) = &self.run_as {
            chown(&hba, user)?;
        }
        Ok(())
    }

    /// The port of a server already running on this data folder, if any. A
    /// `postmaster.pid` whose process is gone, or is not a PostgreSQL
    /// server (its number reused), is stale: it is removed so the server
    /// can start.
    fn running_port(&self) -> Option<u16> {
        let pid_path = self.data.join("postmaster.pid");
        let pid_file = std::fs::read_to_string(&pid_path).ok()?;
        // postmaster.pid: pid, data folder, start time, port, socket folder, …
        let lines: Vec<&str> = pid_file.lines().collect();
        let pid: i32 = lines.first()?.trim().parse().ok()?;
        let alive_postgres = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmd| String::from_utf8_lossy(&cmd).contains("postgres"))
            .unwrap_or(false);
        let socket_dir = lines.get(4).map_or("", |l| l.trim());
        if !alive_postgres {
            tracing::warn!(pid, file = %pid_path.display(), "removing a stale postmaster.pid");
            let _ = std::fs::remove_file(&pid_path);
            return None;
        }
        if socket_dir != self.socket_dir.display().to_string().as_str() {
            // Started by an older version (TCP listener): stop it and start
            // it again closed.
            tracing::warn!("restarting the local PostgreSQL without its TCP listener");
            if let Err(e) = self.pg_ctl_stop() {
                tracing::warn!(error = %e, "could not stop the old local PostgreSQL");
            }
            return None;
        }
        lines.get(3)?.trim().parse().ok()
    }

    /// Runs a server binary, as the unprivileged user when we are root.
    fn run(&self, what: &str, bin: &str, args: &[OsString]) -> Result<String, LocalPgError> {
        let exe = self.bindir.join(bin);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("LC_ALL", "C");
        let out = cmd.output().map_err(|e| LocalPgError::Command {
            what: what.into(),
            detail: format!("could not run {}: {e}", exe.display()),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LocalPgError::Command {
                what: what.into(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            })
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop local PostgreSQL");
        }
    }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_bindir() -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("AGENTPLANE_PG_BINDIR") {
        candidates.push(d.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| has_all(d)).map(|d| {
        // resolve symlinks such as /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin
        std::fs::canonicalize(d.join("pg_ctl"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|p| has_all(p))
            .unwrap_or(d)
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn unprivileged_user() -> Option<String> {
    ["postgres", "nobody"]
        .iter()
        .find(|u| {
            Command::new("id")
                .arg("-u")
                .arg(u)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .map(|u| u.to_string())
}

fn absolute(dir: &Path) -> Result<PathBuf, LocalPgError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .map_err(|source| LocalPgError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Whether every existing ancestor of `dir` is searchable by others.
fn ancestors_searchable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .skip(1)
        .filter_map(|a| std::fs::metadata(a).ok())
        .all(|m| m.permissions().mode() & 0o001 != 0)
}

fn fallback_dir(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let fallback = std::env::temp_dir().join(format!("agentplane-pg-{:016x}", h.finish()));
    tracing::warn!(
        wanted = %dir.display(), using = %fallback.display(),
        "the PostgreSQL user cannot reach the data folder; using a folder under the temp dir"
    );
    fallback
}

/// Creates the cluster's folder (owner-only, owned by the server's user),
/// or checks that an existing one belongs to that user and is closed to
/// others: a folder someone else owns is never taken over.
fn prepare_dir(dir: &Path, run_as: Option<&str>) -> Result<(), LocalPgError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |source| LocalPgError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let owner_uid = match run_as {
        Some(user) => uid_of(user)?,
        // SAFETY: geteuid has no preconditions and cannot fail.
        None => unsafe { libc::geteuid() },
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        if let Some(user) = run_as {
            chown(dir, user)?;
        }
        return Ok(());
    }
    let meta = std::fs::metadata(dir).map_err(io)?;
    if meta.uid() != owner_uid {
        return Err(LocalPgError::Unsafe(format!(
            "{} belongs to uid {}, not to the user the cluster runs as (uid {owner_uid}); \
             refusing to use it. Remove it, or set AGENTPLANE_DATA_DIR to another folder",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        // Others could reach the socket (and the data): close it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn uid_of(user: &str) -> Result<u32, LocalPgError> {
    let out = Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .map_err(|e| LocalPgError::Command {
            what: "id".into(),
            detail: e.to_string(),
        })?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| LocalPgError::Command {
            what: "id".into(),
            detail: format!("no uid for {user}"),
        })
}

fn chown(path: &Path, user: &str) -> Result<(), LocalPgError> {
    let out = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .output()
        .map_err(|e| LocalPgError::Command {
            what: "chown".into(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalPgError::Command {
            what: "chown".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
