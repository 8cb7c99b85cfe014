//! A self-managed PostgreSQL cluster, used when `DATABASE_URL` is unset.
//!
//! It finds the system's server binaries, `initdb`s a data folder (kept
//! between runs), starts the server on a free loopback port and stops it when
//! the [`LocalCluster`] is dropped. PostgreSQL refuses to run as root, so as
//! root the server processes run as an unprivileged user (`postgres`, else
//! `nobody`) that owns the data folder.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    port: u16,
    run_as: Option<String>,
    owned: bool,
}

impl LocalCluster {
    /// Starts (creating if needed) the cluster whose files live in `dir`.
    pub fn start(dir: &Path) -> Result<LocalCluster, LocalPgError> {
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
        create_dir(&dir)?;
        if let Some(user) = &run_as {
            chown_recursive(&dir, user)?;
        }
        let mut cluster = LocalCluster {
            bindir,
            data: dir.join("data"),
            port: 0,
            run_as,
            owned: true,
        };
        if !cluster.data.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if let Some(port) = cluster.running_port() {
            tracing::info!(port, data = %cluster.data.display(), "reusing a running local PostgreSQL");
            cluster.port = port;
            cluster.owned = false;
            return Ok(cluster);
        }
        cluster.port = free_port()?;
        cluster.pg_ctl_start()?;
        tracing::info!(port = cluster.port, data = %cluster.data.display(), "started local PostgreSQL");
        Ok(cluster)
    }

    /// A connection URL for database `db` (trust auth, user `postgres`).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
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
        let data = self.data.clone();
        self.run(
            "pg_ctl stop",
            "pg_ctl",
            &[
                "-D".into(),
                data.into(),
                "-m".into(),
                "fast".into(),
                "-w".into(),
                "stop".into(),
            ],
        )
        .map(|_| tracing::info!("stopped local PostgreSQL"))
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
                "-A".into(),
                "trust".into(),
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
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port
        );
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

    /// The port of a server already running on this data folder, if any.
    fn running_port(&self) -> Option<u16> {
        let status = self.run(
            "pg_ctl status",
            "pg_ctl",
            &["-D".into(), self.data.clone().into(), "status".into()],
        );
        status.ok()?;
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
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

fn create_dir(dir: &Path) -> Result<(), LocalPgError> {
    std::fs::create_dir_all(dir).map_err(|source| LocalPgError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn chown_recursive(dir: &Path, user: &str) -> Result<(), LocalPgError> {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(dir)
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

fn free_port() -> Result<u16, LocalPgError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| LocalPgError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}
