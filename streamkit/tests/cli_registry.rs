//! `streamkit registry` serves the schema registry API on the address it prints, with its own
//! embedded broker, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamkit::serde::Serde;
use streamkit::serde::avro::{Avro, RegistryAuth, RegistryClient};

/// Kills the registry process even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema, Debug, PartialEq)]
struct Arrival {
    route: String,
    minutes: i32,
}

#[test]
fn registry_command_serves_avro_serdes_with_basic_auth_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args([
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--basic-auth",
            "cta:pw",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start streamkit registry");
    let stdout = child.stdout.take().unwrap();
    let mut guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("bootstrap.servers="), "{first}");
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("schema.registry.url=")
        .expect("url line")
        .to_string();

    let anonymous = RegistryClient::new(&url).unwrap();
    let err = anonymous
        .register(
            "x-value",
            &<Arrival as apache_avro::AvroSchema>::get_schema(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");

    let client = RegistryClient::with_auth(
        &url,
        RegistryAuth::Basic {
            user: "cta".into(),
            password: "pw".into(),
        },
    )
    .unwrap();
    let serde = Avro::<Arrival>::registry(&client);
    let arrival = Arrival {
        route: "X9".into(),
        minutes: 4,
    };
    let mut buf = Vec::new();
    serde.serialize("arrivals", &arrival, &mut buf).unwrap();
    let reader = Avro::<Arrival>::registry(
        &RegistryClient::with_auth(
            &url,
            RegistryAuth::Basic {
                user: "cta".into(),
                password: "pw".into(),
            },
        )
        .unwrap(),
    );
    assert_eq!(reader.deserialize("arrivals", &buf).unwrap(), arrival);

    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "registry did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
