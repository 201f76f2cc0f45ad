//! The dashboard loaded in headless Chromium after a simulated hour: three lines with their
//! stations in order, the trains where they last arrived, turnstile counts and the weather.
//! Saves a screenshot of the page at desktop and at phone width (`$CARGO_TARGET_TMPDIR`, and
//! `CTA_TRAINS_SCREENSHOT=path.png` for the README's picture). Fails when Chromium is missing
//! (`apt-get install chromium`; scripts/test.sh installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cta_trains::{StationsFrom, data, start};

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
    let needle = format!("{attr}=\"");
    html.split(needle.as_str())
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[test]
fn the_page_shows_the_lines_trains_turnstiles_and_weather() {
    let browser = chromium();
    assert!(browser.exists());
    let mut running = start(&common::short_run()).expect("the application starts");
    assert_eq!(running.stations_from, StationsFrom::Csv);
    running.wait_for_simulation().expect("the simulation runs");
    common::wait_converged(&running);
    let detail = running.stats.detail.lock().unwrap().clone();

    let url = format!("http://{}/", running.addr);
    let dom = run_chromium(&url, "1300,1500", "--dump-dom");

    // Three lines, blue, green and red, each with its stations in order.
    let sections: Vec<&str> = dom.split("<section class=\"line ").skip(1).collect();
    assert_eq!(sections.len(), 3, "{dom}");
    let routes = data::routes(&data::stations().unwrap());
    for (section, route) in sections.iter().zip(&routes) {
        assert_eq!(attrs(section, "data-line"), [route.line.as_str()]);
        let ids: Vec<i32> = attrs(section, "data-station-id")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let want: Vec<i32> = route.stations.iter().map(|s| s.station_id).collect();
        assert_eq!(ids, want, "{} line", route.line);
        for s in &route.stations {
            assert!(
                section.contains(&format!(">{}<", s.name.replace('\'', "&#39;")))
                    || section.contains(&format!(">{}<", s.name)),
                "{} on the {} line",
                s.name,
                route.line
            );
        }
        assert!(section.contains(&format!("to {}", route.terminal_a())));
    }
    assert!(dom.contains(">Howard<") && dom.contains(">O'Hare<") && dom.contains(">Harlem/Lake<"));

    // Every train, at its last station and direction, with its status.
    let trains = attrs(&dom, "data-train");
    assert_eq!(trains.len(), 30, "{trains:?}");
    for (id, state) in &detail.trains {
        let line = sections
            .iter()
            .find(|s| s.contains(&format!("data-line=\"{}\"", state.line)))
            .unwrap();
        let row = line
            .split("<tr class=\"station\"")
            .find(|r| r.contains(&format!("data-station-id=\"{}\"", state.station_id)))
            .unwrap();
        assert!(
            row.contains(&format!(
                "class=\"train dir-{}\" data-train=\"{id}\"",
                state.direction
            )),
            "{id} at {} ({}): {row}",
            state.station_id,
            state.direction
        );
        assert!(row.contains(&state.train_status.replace('_', " ")));
    }

    // Turnstile entries per station, as produced.
    let mut shown = std::collections::BTreeMap::new();
    for section in &sections {
        for row in section.split("<tr class=\"station\"").skip(1) {
            let id: i32 = attrs(row, "data-station-id")[0].parse().unwrap();
            let entries: u64 = attrs(row, "data-entries")[0].parse().unwrap();
            shown.insert(id, entries);
        }
    }
    for (id, n) in &detail.entries_per_station {
        assert_eq!(shown.get(id), Some(n), "entries at {id}");
    }
    assert!(shown[&40380] > 0, "riders at Clark/Lake");
    assert!(dom.contains("turnstile_summary"));

    // The weather the station posted last.
    let w = detail.last_weather.unwrap();
    assert_eq!(attrs(&dom, "data-status"), [w.status.as_str()]);
    assert!(
        dom.contains(&format!("{:.0}°F", w.temperature)),
        "{}",
        w.temperature
    );

    // Pictures of the page, desktop and phone.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    screenshot(&url, "1300,1500", &dir.join("cta_trains_page.png"));
    screenshot(&url, "390,1400", &dir.join("cta_trains_page_phone.png"));
    if let Ok(path) = std::env::var("CTA_TRAINS_SCREENSHOT") {
        screenshot(&url, "1300,1500", Path::new(&path));
    }
    running.shutdown().unwrap();
}
