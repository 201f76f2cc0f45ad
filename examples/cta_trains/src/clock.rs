//! Simulated time: a date and time of day in Chicago, kept as milliseconds since 1970 of that
//! wall-clock time (no time zone), with the calendar arithmetic the simulation needs.

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A simulated instant's calendar parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year.
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
}

/// The calendar parts of `ms`.
pub fn civil(ms: i64) -> Civil {
    let t = ms.div_euclid(1_000);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Civil {
        year,
        month,
        day,
        hour: (secs / 3_600) as u32,
        minute: ((secs / 60) % 60) as u32,
        // 1970-01-01 was a Thursday (3 counting from Monday = 0).
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

/// Milliseconds of a date and time.
pub fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    (days_from_civil(i64::from(year), i64::from(month), i64::from(day)) * 86_400
        + i64::from(hour) * 3_600
        + i64::from(minute) * 60)
        * 1_000
}

/// Parses `YYYY-MM-DD HH:MM` (or with a `T`).
pub fn parse(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    let ms = at(year, month, day, hour, minute);
    // 2018-02-30 and the like come back as another date.
    (civil(ms).day == day).then_some(ms)
}

/// `Mon 2018-10-01 07:42`.
pub fn format(ms: i64) -> String {
    let c = civil(ms);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!(
        "{} {:04}-{:02}-{:02} {:02}:{:02}",
        DAYS[c.weekday as usize], c.year, c.month, c.day, c.hour, c.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let ms = parse("2018-10-01 07:42").unwrap();
        assert_eq!(format(ms), "Mon 2018-10-01 07:42");
        let c = civil(ms + 6 * 86_400_000);
        assert_eq!((c.weekday, c.day), (6, 7));
        assert!(parse("2018-02-30 00:00").is_none());
        assert!(parse("2018-10-01").is_none());
        assert_eq!(
            format(parse("2024-02-29T23:59").unwrap()),
            "Thu 2024-02-29 23:59"
        );
    }
}
