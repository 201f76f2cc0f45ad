//! `--help` shows where the Postgres URL can come from, never the URL (and its password) that
//! the environment holds.

use std::process::Command;

#[test]
fn help_does_not_print_the_postgres_url_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_cta_trains"))
        .arg("--help")
        .env(
            "CTA_TRAINS_POSTGRES_URL",
            "postgres://cta_admin:SECRET-PW@db.internal:5432/cta",
        )
        .output()
        .expect("run cta_trains --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("CTA_TRAINS_POSTGRES_URL"), "{help}");
    assert!(
        help.contains("--bootstrap-servers") && help.contains("--schema-registry"),
        "{help}"
    );
    assert!(!help.contains("SECRET-PW"), "{help}");
}
