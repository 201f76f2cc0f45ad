//! `--help` shows where the Postgres URL and the JCDecaux key can come from, never the values
//! the environment holds.

use std::process::Command;

#[test]
fn help_does_not_print_the_postgres_url_or_the_api_key_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_bike_stations"))
        .arg("--help")
        .env(
            "BIKE_STATIONS_POSTGRES_URL",
            "postgres://bikes:SECRET-PW@db.internal:5432/warehouse",
        )
        .env("JCDECAUX_API_KEY", "SECRET-KEY")
        .output()
        .expect("run bike_stations --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("BIKE_STATIONS_POSTGRES_URL"), "{help}");
    assert!(help.contains("JCDECAUX_API_KEY"), "{help}");
    assert!(
        !help.contains("SECRET-PW") && !help.contains("SECRET-KEY"),
        "{help}"
    );
}
