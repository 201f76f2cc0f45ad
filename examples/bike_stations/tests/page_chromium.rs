//! The dashboard in headless Chromium, on the one-command defaults (embedded broker, local
//! API, no warehouse): the Leaflet map with a marker per station coloured like its row, every
//! station with a sparkline, the city totals adding up, the alerts, yesterday's batch, and
//! nothing loaded from elsewhere. Saves screenshots at desktop and phone width in
//! `$CARGO_TARGET_TMPDIR` (`BIKE_STATIONS_SCREENSHOT=page.png` writes the README's picture).
//! Fails when Chromium is missing (`apt-get install chromium`; scripts/test.sh installs it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bike_stations::model::{CityTotals, DAY_MS, StationTrack, format_date, now_ms};
use bike_stations::topology::{CITY_TOTALS, TRACKS};
use bike_stations::{Args, start};

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

/// Runs headless Chromium on `url` at `size` with `mode` (`--dump-dom` or `--screenshot=…`).
fn run_chromium(url: &str, size: &str, mode: &str) -> String {
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
        ])
        .arg(format!("--window-size={size}"))
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

fn screenshot(url: &str, size: &str, path: &Path) {
    let _ = std::fs::remove_file(path);
    run_chromium(url, size, &format!("--screenshot={}", path.display()));
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        path.display()
    );
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
fn the_map_shows_every_station_coloured_with_sparklines_totals_alerts_and_the_batch() {
    let browser = chromium();
    assert!(browser.exists());
    let running = start(&Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        // Few polls while the page is read: the city's totals trail its stations' by the
        // records of a poll still on their way through the repartition topic.
        poll_interval_secs: 30,
        postgres_url: None,
        // The last hours are the city's busy afternoon, whatever the hour here.
        utc_offset_hours: common::afternoon_utc_offset_hours(),
        ..Args::defaults()
    })
    .expect("the program starts");
    // The history is in the stores and yesterday's batch has run.
    running
        .wait_until(Duration::from_secs(120), |r| {
            let stations = r
                .app
                .store::<String, StationTrack>(TRACKS)
                .and_then(|s| s.all())
                .map_or(0, |a| a.len());
            let city = r
                .app
                .store::<String, CityTotals>(CITY_TOTALS)
                .and_then(|s| s.all())
                .map_or(0, |a| a.len());
            stations == 50 && city == 1 && !r.batches.lock().unwrap().is_empty()
        })
        .unwrap();
    // … and the streaming job has caught up with the history: every record is in the tracks,
    // and the city's totals are the sum of its stations.
    let mut last = String::new();
    running
        .wait_until(Duration::from_secs(120), |r| {
            let tracks = r
                .app
                .store::<String, StationTrack>(TRACKS)
                .and_then(|s| s.all())
                .unwrap_or_default();
            let records: u64 = tracks.iter().map(|(_, t)| t.records).sum();
            let bikes: i64 = tracks
                .iter()
                .filter_map(|(_, t)| t.latest.as_ref())
                .map(|s| s.available_bikes)
                .sum();
            let city = r
                .app
                .store::<String, CityTotals>(CITY_TOTALS)
                .and_then(|s| s.get(&"bruxelles".to_string()))
                .ok()
                .flatten()
                .map_or(-1, |c| c.bikes);
            last = format!(
                "{records} records of {}, city {city} bikes, stations {bikes}",
                r.history_records
            );
            records >= r.history_records as u64 && city == bikes
        })
        .unwrap_or_else(|e| panic!("{e}: {last}"));

    // Nothing comes from elsewhere: the script and the stylesheet are the page's own.
    let (status, html) = common::get(running.addr, "/");
    assert_eq!(status, 200);
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "{html}"
    );
    assert!(html.contains("<script src=\"/assets/dashboard.js\">"));
    let (status, js) = common::get(running.addr, "/assets/dashboard.js");
    assert_eq!(status, 200);
    assert!(js.contains("leaflet"), "the bundle carries Leaflet");

    let url = format!("http://{}/", running.addr);
    let dom = run_chromium(&url, "1400,1000", "--dump-dom");

    // Leaflet drew the map with one marker per station, coloured like the station's row.
    assert!(dom.contains("leaflet-container"), "{dom}");
    assert!(dom.contains("data-markers=\"50\""), "{dom}");
    let map_part = dom.split("id=\"panels\"").next().unwrap();
    let marker_keys = attrs(map_part, "data-station");
    let marker_levels = attrs(map_part, "data-level");
    assert_eq!(marker_keys.len(), 50, "{map_part}");
    let markers: BTreeMap<&str, &str> = marker_keys.into_iter().zip(marker_levels).collect();
    assert_eq!(markers.len(), 50);

    let panels = dom.split("id=\"panels\"").nth(1).unwrap();
    let rows: Vec<&str> = panels.split("<tr class=\"station ").skip(1).collect();
    assert_eq!(rows.len(), 50);
    let mut bikes_total = 0;
    let mut with_history = 0;
    for row in &rows {
        let level = row.split('"').next().unwrap();
        let key = attrs(row, "data-station")[0];
        assert_eq!(markers.get(key), Some(&level), "{key}");
        bikes_total += attrs(row, "data-bikes")[0].parse::<i64>().unwrap();
        // A sparkline of the last hours, from the 10-minute windows.
        let points: usize = attrs(row, "data-points")[0].parse().unwrap();
        assert!(row.contains("<svg class=\"spark\""));
        if points > 3 {
            with_history += 1;
        }
    }
    assert!(
        with_history >= 40,
        "{with_history} stations with a sparkline"
    );
    assert!(panels.contains("GRAND-PLACE") && panels.contains("JARDIN AUX FLEURS"));

    // The city's totals are the sum of its stations: up to the few records still on their way
    // through the repartition topic to the city's aggregate while the feed is live (the
    // driver tests check the totals exactly).
    let city = panels
        .split("data-city=\"bruxelles\"")
        .nth(1)
        .expect("Bruxelles");
    assert_eq!(attrs(city, "data-stations")[0], "50");
    let city_bikes = attrs(city, "data-bikes")[0].parse::<i64>().unwrap();
    assert!(
        (city_bikes - bikes_total).abs() <= 10,
        "{city_bikes} vs {bikes_total}"
    );

    // Alerts: each names a station of the table and says which kind.
    let alerts = panels
        .split("id=\"alerts\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    for (key, kind) in attrs(alerts, "data-alert-station")
        .into_iter()
        .zip(attrs(alerts, "data-alert-kind"))
    {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("data-station=\"{key}\"")))
        );
        assert!(
            ["empty soon", "full soon", "empty", "full"].contains(&kind),
            "{kind}"
        );
    }

    // Yesterday's batch ran (no warehouse on the one-command path).
    let yesterday = format_date(now_ms().div_euclid(DAY_MS) - 1);
    assert_eq!(attrs(panels, "data-day"), [yesterday.as_str()]);
    assert!(attrs(panels, "data-facts")[0].parse::<usize>().unwrap() > 500);
    assert!(panels.contains("no warehouse"));

    // Pictures of the page, desktop and phone.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    screenshot(&url, "1400,1000", &dir.join("bike_stations_page.png"));
    screenshot(&url, "390,1400", &dir.join("bike_stations_page_phone.png"));
    if let Ok(path) = std::env::var("BIKE_STATIONS_SCREENSHOT") {
        screenshot(&url, "1400,1000", Path::new(&path));
    }
    running.shutdown().unwrap();
}
