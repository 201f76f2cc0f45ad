//! The page in headless Chromium, on the one-command defaults (embedded broker and registry,
//! local API, no Cassandra): the counts per country agree with the application's stores, the
//! age bands add up to the users, the model's accuracy is shown, and the form's answer for a
//! name the model has learned is the gender the API gives that name. Saves a screenshot in
//! `$CARGO_TARGET_TMPDIR` (`RANDOM_USERS_SCREENSHOT=page.png` writes the README's picture).
//! Fails when Chromium is missing (`apt-get install chromium`; scripts/test.sh installs it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use random_users::learn::{self, Entry};
use random_users::topology::{BY_COUNTRY_GENDER, USERS_STORE};
use random_users::{Args, start};

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
            "--hide-scrollbars",
            "--window-size=1100,1200",
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

fn attr_rows<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.split(needle.as_str()).skip(1).collect()
}

/// The number in the first `<td class="{class}">` (or `<span class="{class}">`) of `row`.
fn cell(row: &str, class: &str) -> i64 {
    let after = row
        .split(&format!("class=\"{class}\">"))
        .nth(1)
        .unwrap_or_else(|| panic!("{class} in {row}"));
    after.split('<').next().unwrap().parse().unwrap()
}

/// The local API serves this many users, then none: the stores settle.
const USERS: usize = 400;

#[test]
fn the_page_shows_the_counts_the_age_bands_the_model_and_answers_the_form() {
    let browser = chromium();
    assert!(browser.exists());
    let running = start(&Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        poll_interval_ms: 200,
        results_per_poll: 50,
        api_max_users: Some(USERS as u64),
        ..Args::defaults()
    })
    .expect("the program starts");
    assert!(running.sink.is_none(), "no --cassandra: the sink is off");
    running
        .wait_until(Duration::from_secs(180), |r| {
            // The table and its counts come through a repartition topic: wait for them too.
            let users = r
                .app
                .store::<String, random_users::model::CreatedUser>(USERS_STORE)
                .and_then(|s| s.all())
                .map_or(0, |a| a.len());
            let counted = |name: &str| -> i64 {
                r.app
                    .store::<String, i64>(name)
                    .and_then(|s| s.all())
                    .map_or(0, |a| a.iter().map(|(_, n)| n).sum())
            };
            let model = r
                .app
                .store::<String, Entry>(learn::MODEL_STORE)
                .ok()
                .map(|s| {
                    let get = |k: &str| s.get(&k.to_string()).ok().flatten();
                    let seen = learn::evaluation_in(get).seen;
                    seen + learn::predict("", "", learn::counts_in(get)).map_or(0, |p| p.trained_on)
                })
                .unwrap_or(0);
            users == USERS
                && counted(BY_COUNTRY_GENDER) == USERS as i64
                && counted(random_users::topology::BY_AGE_BAND) == USERS as i64
                && model == USERS as u64
        })
        .unwrap();
    // A name the model has seen: the most frequent first name of the users so far.
    let users = running
        .app
        .store::<String, random_users::model::CreatedUser>(USERS_STORE)
        .unwrap()
        .all()
        .unwrap();
    let mut names: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (_, u) in &users {
        *names
            .entry((u.first_name.clone(), u.country.clone(), u.gender.clone()))
            .or_default() += 1;
    }
    let ((name, country, gender), _) = names.iter().max_by_key(|(_, n)| **n).unwrap();

    let url = format!(
        "http://{}/?first_name={}&country={}",
        running.addr,
        name.replace(' ', "+"),
        country.replace(' ', "+")
    );
    let dom = run_chromium(&url, "--dump-dom");
    // The stores, read after the page: the page's numbers can only be smaller or equal.
    let stores = |name: &str| -> BTreeMap<String, i64> {
        running
            .app
            .store::<String, i64>(name)
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .collect()
    };
    let by_cg = stores(BY_COUNTRY_GENDER);
    let users_on_page: i64 = dom
        .split("<b id=\"users\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no user total in {dom}"));
    assert_eq!(users_on_page, USERS as i64);

    let rows = attr_rows(&dom, "data-country");
    assert!(rows.len() >= 5, "countries: {}", rows.len());
    let mut total = 0;
    for row in &rows {
        let country = row.split('"').next().unwrap();
        let (f, m, t) = (cell(row, "female"), cell(row, "male"), cell(row, "total"));
        assert_eq!(f + m, t, "{country}");
        assert!(
            f <= by_cg
                .get(&format!("{country}|female"))
                .copied()
                .unwrap_or(0),
            "{country}"
        );
        assert!(
            m <= by_cg.get(&format!("{country}|male")).copied().unwrap_or(0),
            "{country}"
        );
        total += t;
    }
    assert_eq!(total, users_on_page, "the countries add up to the users");
    let bands = attr_rows(&dom, "data-band");
    assert_eq!(bands.len(), random_users::model::AGE_BANDS.len());
    let band_total: i64 = bands.iter().map(|b| cell(b, "n")).sum();
    assert_eq!(
        band_total, users_on_page,
        "the age bands add up to the users"
    );

    assert!(
        dom.contains("id=\"accuracy\""),
        "the model's accuracy is shown"
    );
    assert!(dom.contains("id=\"curve\""), "with its learning curve");
    let prediction = dom
        .split("<p id=\"prediction\" data-gender=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no prediction in the page: {dom}"));
    assert_eq!(prediction, gender, "{name} from {country}");
    assert!(dom.contains("Cassandra sink off"));
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "nothing from elsewhere"
    );

    // The JSON endpoints agree.
    let (status, body) = common::get(
        running.addr,
        &format!(
            "/api/predict?first_name={}&country={}",
            name.replace(' ', "+"),
            country.replace(' ', "+")
        ),
    );
    assert_eq!(status, 200, "{body}");
    let p: learn::Prediction = serde_json::from_str(&body).unwrap();
    assert_eq!(&p.gender, gender);

    let shot = std::env::var("RANDOM_USERS_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_TARGET_TMPDIR")).join("random_users.png"));
    let _ = std::fs::remove_file(&shot);
    run_chromium(&url, &format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    running.shutdown().unwrap();
}
