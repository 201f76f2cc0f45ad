//! The page, loaded in headless Chromium, shows live vehicles with predicted delays, the
//! model's quality and the per-line delay chart. Fails when Chromium is missing
//! (`apt-get install chromium`; scripts/test.sh installs it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bus_arrivals::{Args, start};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("headless Chromium is needed for this test: apt-get install chromium");
}

/// A plain HTTP/1.1 GET; returns the body.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=…`).
fn run_chromium(url: &str, mode: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_page_shows_vehicles_with_predicted_delays() {
    let browser = chromium();
    assert!(browser.exists());
    let args = Args {
        rows: 1_200,
        vehicles: 40,
        rate: 0.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        application_id: "bus-page-chromium".into(),
        min_train_rows: 400,
        trees: 5,
        max_depth: 6,
        retrain_secs: 3_600,
        quiet: true,
        ..Args::defaults()
    };
    let mut running = start(&args).expect("the application starts");
    running.wait_for_replay().expect("the replay completes");
    running
        .wait_until(Duration::from_secs(90), |r| {
            r.model.get().is_some()
                && get(r.addr, "/api/vehicles").contains("\"predicted_delay\":")
                && !get(r.addr, "/api/vehicles").contains("\"predicted_delay\":null")
        })
        .unwrap_or_else(|e| panic!("{e}; model: {:?}", running.model.last_error()));

    let url = format!("http://{}/", running.addr);
    let dom = run_chromium(&url, "--dump-dom");
    let vehicle_rows = dom.matches(r#"<tr class="vehicle""#).count();
    let predicted = dom.matches(r#"data-predicted="yes""#).count();
    assert!(
        vehicle_rows >= 30,
        "{vehicle_rows} vehicles on the page:\n{dom}"
    );
    assert_eq!(
        predicted, vehicle_rows,
        "every live vehicle has a prediction"
    );
    assert!(dom.contains(r#"id="model-mae""#) && dom.contains(r#"id="baseline-mae""#));
    assert!(
        dom.matches(r#"class="series""#).count() >= 6,
        "a line per bus line in the chart"
    );
    // A predicted delay is a signed number of minutes.
    let cell = dom
        .split(r#"data-predicted="yes""#)
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split(" min").next())
        .unwrap();
    assert!(cell.parse::<f64>().is_ok(), "{cell:?}");

    // BUS_ARRIVALS_SCREENSHOT=path keeps a picture of the page (the README's is made so).
    if let Ok(path) = std::env::var("BUS_ARRIVALS_SCREENSHOT") {
        run_chromium(&url, &format!("--screenshot={path}"));
    }
    running.shutdown().unwrap();
}
