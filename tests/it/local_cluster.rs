//! The self-managed cluster `serve` runs is crash-safe and closed: durability
//! settings at PostgreSQL's defaults, no TCP listener, a socket folder only
//! its owner may enter; a folder someone else owns is refused, and a stale
//! `postmaster.pid` does not stop it from starting.

use agentplane::db;
use agentplane::localpg::{LocalCluster, Storage};
use std::os::unix::fs::PermissionsExt;

fn fresh_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "agentplane-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

fn setting(rt: &tokio::runtime::Runtime, url: &str, name: &str) -> String {
    rt.block_on(async {
        let c = db::connect(url, "t").await.expect("connect");
        c.query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn the_served_cluster_is_durable_and_closed() {
    let dir = fresh_dir("durable");
    let cluster = LocalCluster::start(&dir, Storage::Durable).expect("start");
    let url = cluster.url("postgres");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for name in ["fsync", "synchronous_commit", "full_page_writes"] {
        assert_eq!(setting(&rt, &url, name), "on", "{name}");
    }
    assert_eq!(setting(&rt, &url, "listen_addresses"), "");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the socket's folder is the owner's alone");
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(rules, ["local all all trust"]);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_test_cluster_may_be_fast() {
    let dir = fresh_dir("fast");
    let cluster = LocalCluster::start(&dir, Storage::UnsafeFast).expect("start");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(setting(&rt, &cluster.url("postgres"), "fsync"), "off");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_pid_file_is_removed() {
    let dir = fresh_dir("stale");
    let mut cluster = LocalCluster::start(&dir, Storage::UnsafeFast).expect("start");
    let data = cluster.data_dir().to_path_buf();
    cluster.stop().expect("stop");
    // a pid file left by a crash, naming a process that is not PostgreSQL
    let pid_file = data.join("postmaster.pid");
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n0\n5432\n\n", std::process::id(), data.display()),
    )
    .unwrap();
    let cluster = LocalCluster::start(&dir, Storage::UnsafeFast).expect("restart past a stale pid");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(setting(&rt, &cluster.url("postgres"), "fsync"), "off");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_owned_by_someone_else_is_refused() {
    let dir = fresh_dir("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    // owned by a user the cluster never runs as
    let status = std::process::Command::new("chown")
        .arg("12345:12345")
        .arg(&dir)
        .status()
        .unwrap();
    if !status.success() {
        // not root: the folder is ours and we cannot give it away; nothing to test
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let err = LocalCluster::start(&dir, Storage::Durable).expect_err("refused");
    assert!(err.to_string().contains("refusing to use it"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
