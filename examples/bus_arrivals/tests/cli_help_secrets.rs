//! `--help` shows where the Postgres URL can come from, never the URL (and its password) that
//! the environment holds.

use std::process::Command;

#[test]
fn help_does_not_print_the_postgres_url_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_bus_arrivals"))
        .arg("--help")
        .env(
            "BUS_ARRIVALS_POSTGRES_URL",
            "postgres://bus:SECRET-PW@db.internal:5432/transit",
        )
        .output()
        .expect("run bus_arrivals --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("BUS_ARRIVALS_POSTGRES_URL"), "{help}");
    assert!(!help.contains("SECRET-PW"), "{help}");
}
