//! The page in headless Chromium: the SVG map of the road graph, every vehicle drawn by the
//! page's script from WebSocket messages (marks carrying their positions, which only the
//! script writes), the trips from the trip-state table with status, progress and ETA, and
//! nothing loaded from elsewhere. Saves a screenshot in `$CARGO_TARGET_TMPDIR`
//! (`VEHICLE_TRIPS_SCREENSHOT=page.png` writes the README's picture). Fails when Chromium is
//! missing (`apt-get install chromium`; scripts/test.sh installs it).
//!
//! `--dump-dom` dumps the page at its load event, before any WebSocket message (virtual time
//! does not wait for them), so the page is read live through Chromium's DevTools protocol
//! instead: `--remote-debugging-port=0`, then `Runtime.evaluate` until the script has drawn
//! from a message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vehicle_trips::model::TripState;
use vehicle_trips::topology::TRIPS;
use vehicle_trips::{Args, start};

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

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=…`), giving the
/// page's script `budget_ms` of virtual time (the WebSocket's messages arrive meanwhile).
fn run_chromium(url: &str, mode: &str, budget_ms: u32) -> String {
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
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
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

/// Headless Chromium on `url` with the DevTools protocol on a free port.
struct DevTools {
    child: Child,
    _profile: tempfile::TempDir,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl DevTools {
    fn open(url: &str) -> DevTools {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("running chromium");
        // Chromium writes the port it took to DevToolsActivePort in its profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The page's target.
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ws_url = loop {
            let (_, body) = common::request(addr, "GET", "/json/list", "");
            let targets: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let page = targets.as_array().into_iter().flatten().find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
            if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                break ws.to_string();
            }
            assert!(Instant::now() < deadline, "no page target: {body}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let (socket, _) = tungstenite::connect(ws_url.as_str()).expect("the DevTools socket");
        DevTools {
            child,
            _profile: profile,
            socket,
            next_id: 1,
        }
    }

    /// Evaluates `expression` in the page; its value.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.socket
            .send(tungstenite::Message::Text(msg.to_string().into()))
            .unwrap();
        loop {
            let m = self.socket.read().expect("a DevTools answer");
            let Ok(text) = m.to_text() else { continue };
            let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            if v["id"] == id {
                return v["result"]["result"]["value"].clone();
            }
        }
    }
}

impl Drop for DevTools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of `attr="…"` in `html`, in order.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.split(needle.as_str())
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[test]
fn the_live_map_shows_every_vehicle_and_the_trips_from_the_websocket() {
    let running = start(&Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        tick_ms: 100,
        demo_vehicles: 3,
        land_every_secs: 1,
        ..Args::defaults()
    })
    .expect("the program starts");
    let addr = running.addr;
    let (status, _) = common::request(
        addr,
        "POST",
        "/api/vehicles",
        r#"{"name":"Taxi <7>","place":"retiro"}"#,
    );
    assert_eq!(status, 201);
    let (status, body) = common::request(
        addr,
        "POST",
        "/api/trips",
        r#"{"vehicle_id":"v4","destination":"espana"}"#,
    );
    assert_eq!(status, 201, "{body}");
    // Every vehicle is on a trip the table knows of.
    running
        .wait_until(Duration::from_secs(60), |r| {
            r.app
                .store::<String, TripState>(TRIPS)
                .and_then(|s| s.all())
                .map_or(0, |a| a.len())
                >= 4
        })
        .unwrap();

    // Nothing comes from elsewhere.
    let (status, html) = common::request(addr, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "{html}"
    );
    assert!(html.contains("<script src=\"/assets/page.js\">"));
    let (status, js) = common::request(addr, "GET", "/assets/page.js", "");
    assert_eq!(status, 200);
    assert!(js.contains("new WebSocket("));

    let url = format!("http://{addr}/");
    let mut browser = DevTools::open(&url);
    // The WebSocket delivers, and the script draws from each message.
    let deadline = Instant::now() + Duration::from_secs(30);
    let messages = loop {
        let n = browser
            .eval("Number(document.body && document.body.getAttribute('data-ws-messages'))")
            .as_u64()
            .unwrap_or(0);
        if n >= 2 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "{n} WebSocket messages reached the page"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(messages >= 2);
    let first_clock =
        browser.eval("Number(document.getElementById('clock').getAttribute('data-clock'))");
    let dom = browser
        .eval("document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_string();
    // The simulated clock moves on the page.
    std::thread::sleep(Duration::from_millis(500));
    let later_clock =
        browser.eval("Number(document.getElementById('clock').getAttribute('data-clock'))");
    assert!(
        later_clock.as_i64() > first_clock.as_i64(),
        "{first_clock} then {later_clock}"
    );
    drop(browser);
    assert!(dom.contains("id=\"live\" class=\"on\""), "{dom}");
    // The map: every road and place of the graph, every vehicle with its position.
    let graph = vehicle_trips::roads::Graph::bundled();
    assert_eq!(dom.matches("class=\"road\"").count(), graph.roads.len());
    assert_eq!(attrs(&dom, "data-place").len(), graph.places.len());
    let vehicles = attrs(&dom, "data-vehicle");
    assert_eq!(vehicles, ["v1", "v2", "v3", "v4"], "{dom}");
    let lats: Vec<f64> = attrs(&dom, "data-lat")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(lats.len(), 4, "the script drew every vehicle");
    assert!(lats.iter().all(|l| (40.40..40.43).contains(l)), "{lats:?}");
    // The name is shown as text, not markup.
    assert!(dom.contains("Taxi &lt;7&gt;"), "{dom}");
    // Trips: one row per trip of the table, with status, progress and an ETA or arrival.
    let rows: Vec<&str> = dom.split("<tr data-trip=\"").skip(1).collect();
    assert!(rows.len() >= 4, "{dom}");
    for row in &rows {
        let status = attrs(row, "data-status")[0];
        assert!(
            ["driving", "stopped", "arrived"].contains(&status),
            "{status}"
        );
        let progress: f64 = attrs(row, "data-progress")[0].parse().unwrap();
        assert!((0.0..=1.0).contains(&progress));
        let eta = row.split("<td>").last().unwrap();
        assert!(
            eta.starts_with("arrived ") || eta.as_bytes()[2] == b':' || eta.starts_with('—'),
            "{eta}"
        );
    }
    assert!(dom.contains("Retiro → Plaza de España"), "{dom}");
    // The route of a driving vehicle is drawn.
    assert!(dom.contains("class=\"route\""), "{dom}");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for path in [
        Some(dir.join("vehicle_trips_page.png")),
        std::env::var("VEHICLE_TRIPS_SCREENSHOT")
            .ok()
            .map(PathBuf::from),
    ]
    .into_iter()
    .flatten()
    {
        let _ = std::fs::remove_file(&path);
        run_chromium(&url, &format!("--screenshot={}", path.display()), 2000);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            Path::new(&path).display()
        );
    }
    running.shutdown().unwrap();
}
