//! Windows: how records are grouped in time, when a window closes, and windowed keys.
//!
//! Four kinds, with Kafka Streams' semantics:
//! - **tumbling** ([`TimeWindows::tumbling`]): fixed, gap-less, non-overlapping windows
//!   `[start, start + size)` aligned to the epoch;
//! - **hopping** ([`TimeWindows::hopping`]): fixed-size windows every `advance`, so a record
//!   belongs to `size / advance` windows;
//! - **sliding** ([`SlidingWindows`]): windows of a maximum time difference whose bounds
//!   are defined by the records themselves: each record closes the window `[t - d, t]` that
//!   ends at it and may open the one `[t + 1, t + 1 + d]` starting just after it (both ends
//!   inclusive);
//! - **session** ([`SessionWindows`]): per-key periods of activity separated by at least an
//!   inactivity gap; a record that falls within the gap of existing sessions merges them.
//!
//! **Time and lateness.** A task's *stream time* is the largest record timestamp it has seen.
//! A window *closes* once stream time reaches `end + grace`; a record for a closed window is
//! *late*: dropped, counted, optionally dead-lettered. Grace defaults to zero, as in Kafka
//! Streams 3+ (`ofSizeWithNoGrace`).
//!
//! **Windowed keys** on output topics use Kafka Streams' byte layouts so Java consumers can read
//! them: [`WindowedSerde`] writes `key ‖ start` (8 bytes, big-endian) for time windows and
//! `key ‖ end ‖ start` for sessions.

mod join;
mod serde;

use std::time::Duration;

pub use self::join::JoinWindows;
pub use self::serde::WindowedSerde;

/// A window's bounds in ms since the epoch: `start` inclusive; `end` exclusive for time
/// windows, inclusive for sliding and session windows (as in Kafka Streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start, inclusive.
    pub start: i64,
    /// End (see the type's documentation for inclusiveness).
    pub end: i64,
}

impl Window {
    /// A window from `start` to `end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::window::Window;
    /// let w = Window::new(60_000, 120_000);
    /// assert_eq!((w.start, w.end), (60_000, 120_000));
    /// assert!(Window::new(0, 60_000) < w);
    /// ```
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key together with the window its aggregate belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Tumbling and hopping windows: fixed size, aligned to the epoch.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamkit::window::{TimeWindows, Window};
/// let hopping = TimeWindows::hopping(Duration::from_secs(600), Duration::from_secs(60));
/// let w = hopping.windows_for(125_000);
/// assert_eq!(w.len(), 3); // the 10-minute windows starting at 0, 60 s and 120 s
/// assert_eq!(w[2], Window::new(120_000, 720_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window size in ms.
    pub size_ms: i64,
    /// Distance between window starts in ms (`== size_ms` for tumbling windows).
    pub advance_ms: i64,
    /// How long after its end a window still accepts records, in ms.
    pub grace_ms: i64,
}

impl TimeWindows {
    /// Non-overlapping windows of `size`. Grace = 0.
    ///
    /// # Examples
    ///
    /// A count per key and minute, with 10 s of grace for records out of order:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
    ///     .count(Materialized::named("taps-per-minute"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("clark".into(), "tap".into(), 30_000)?;
    /// taps.pipe_at("clark".into(), "tap".into(), 65_000)?;
    /// taps.pipe_at("clark".into(), "tap".into(), 40_000)?; // out of order, within grace
    /// let counts = d.window_store::<String, i64>("taps-per-minute")?;
    /// assert_eq!(counts.fetch(&"clark".to_string(), 0, 60_000)?, vec![(0, 2), (60_000, 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn tumbling(size: Duration) -> Self {
        let size_ms = millis(size).max(1);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }

    /// Windows of `size` starting every `advance` (`0 < advance <= size`). Grace = 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::{TimeWindows, Window};
    /// let w = TimeWindows::hopping(Duration::from_secs(60), Duration::from_secs(30));
    /// assert_eq!((w.size_ms, w.advance_ms), (60_000, 30_000));
    /// assert_eq!(w.windows_for(45_000), vec![Window::new(0, 60_000), Window::new(30_000, 90_000)]);
    /// ```
    pub fn hopping(size: Duration, advance: Duration) -> Self {
        let size_ms = millis(size).max(1);
        TimeWindows {
            size_ms,
            advance_ms: millis(advance).clamp(1, size_ms),
            grace_ms: 0,
        }
    }

    /// Accept records up to `grace` after a window's end. Default = 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::TimeWindows;
    /// let w = TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10));
    /// assert_eq!(w.grace_ms, 10_000);
    /// // The window [0, 60 s) stays open until stream time reaches 70 s.
    /// assert!(!w.is_closed(60_000, 69_999));
    /// assert!(w.is_closed(60_000, 70_000));
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The windows a record with timestamp `ts` belongs to, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::{TimeWindows, Window};
    /// let w = TimeWindows::tumbling(Duration::from_secs(60));
    /// assert_eq!(w.windows_for(61_000), vec![Window::new(60_000, 120_000)]);
    /// ```
    pub fn windows_for(&self, ts: i64) -> Vec<Window> {
        self.windows_iter(ts).collect()
    }

    /// [`TimeWindows::windows_for`] without collecting them.
    pub(crate) fn windows_iter(&self, ts: i64) -> impl Iterator<Item = Window> + use<> {
        // Same alignment as Kafka Streams' TimeWindows#windowsFor.
        let (size, advance) = (self.size_ms, self.advance_ms);
        let first = ((ts - size + advance).max(0) / advance) * advance;
        std::iter::successors(Some(first), move |s| Some(s + advance))
            .take_while(move |&s| s <= ts)
            .map(move |s| Window::new(s, s + size))
    }

    /// Whether a window ending at `end` is closed at `stream_time`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::TimeWindows;
    /// let w = TimeWindows::tumbling(Duration::from_secs(60));
    /// assert!(!w.is_closed(60_000, 59_999));
    /// assert!(w.is_closed(60_000, 60_000));
    /// ```
    pub fn is_closed(&self, end: i64, stream_time: i64) -> bool {
        stream_time != i64::MIN && end + self.grace_ms <= stream_time
    }
}

/// Sliding windows (Kafka Streams `SlidingWindows`): all windows of length `time_difference`
/// (both ends inclusive) whose bounds touch a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Maximum time difference between two records of one window, in ms.
    pub time_difference_ms: i64,
    /// Grace in ms.
    pub grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference`. Grace = 0.
    ///
    /// # Examples
    ///
    /// Taps within 10 s of one another, counted per key:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .count(Materialized::named("taps-within-10s"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("card-7".into(), "tap".into(), 20_000)?;
    /// taps.pipe_at("card-7".into(), "tap".into(), 25_000)?;
    /// let counts = d.window_store::<String, i64>("taps-within-10s")?;
    /// // The window ending at the second tap holds both.
    /// assert!(counts.fetch(&"card-7".to_string(), 0, 25_000)?.contains(&(15_000, 2)));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_time_difference(time_difference: Duration) -> Self {
        SlidingWindows {
            time_difference_ms: millis(time_difference),
            grace_ms: 0,
        }
    }

    /// Accept records up to `grace` after a window's end. Default = 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::SlidingWindows;
    /// let w = SlidingWindows::with_time_difference(Duration::from_secs(10)).grace(Duration::from_secs(3));
    /// assert_eq!((w.time_difference_ms, w.grace_ms), (10_000, 3_000));
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }
}

/// Session windows: per-key activity separated by an inactivity gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Records closer than this (in ms) belong to one session.
    pub gap_ms: i64,
    /// Grace in ms.
    pub grace_ms: i64,
}

impl SessionWindows {
    /// Sessions separated by at least `gap` of inactivity. Grace = 0.
    ///
    /// # Examples
    ///
    /// Taps less than 5 minutes apart form one session:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(300)))
    ///     .count(Materialized::named("sessions"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("card-7".into(), "tap".into(), 0)?;
    /// taps.pipe_at("card-7".into(), "tap".into(), 60_000)?; // same session
    /// taps.pipe_at("card-7".into(), "tap".into(), 900_000)?; // a new one
    /// let sessions = d.session_store::<String, i64>("sessions")?;
    /// let found = sessions.fetch(&"card-7".to_string())?;
    /// assert_eq!(found, vec![(Window::new(0, 60_000), 2), (Window::new(900_000, 900_000), 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        SessionWindows {
            gap_ms: millis(gap),
            grace_ms: 0,
        }
    }

    /// Accept records up to `grace` after a session's end. Default = 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::SessionWindows;
    /// let w = SessionWindows::with_inactivity_gap(Duration::from_secs(300)).grace(Duration::from_secs(30));
    /// assert_eq!((w.gap_ms, w.grace_ms), (300_000, 30_000));
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// Whether a record at `ts` joins (or bridges) a session spanning `session`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::{SessionWindows, Window};
    /// let w = SessionWindows::with_inactivity_gap(Duration::from_secs(5));
    /// let session = Window::new(10_000, 20_000);
    /// assert!(w.overlaps(session, 24_000)); // within the gap after its end
    /// assert!(!w.overlaps(session, 26_000));
    /// ```
    pub fn overlaps(&self, session: Window, ts: i64) -> bool {
        ts >= session.start - self.gap_ms && ts <= session.end + self.gap_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_partition_time() {
        let w = TimeWindows::tumbling(Duration::from_secs(60));
        assert_eq!(w.windows_for(0), vec![Window::new(0, 60_000)]);
        assert_eq!(w.windows_for(59_999), vec![Window::new(0, 60_000)]);
        assert_eq!(w.windows_for(60_000), vec![Window::new(60_000, 120_000)]);
    }

    #[test]
    fn hopping_windows_near_zero_start_at_zero() {
        let w = TimeWindows::hopping(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(w.windows_for(3), vec![Window::new(0, 10)]);
        assert_eq!(
            w.windows_for(12),
            vec![Window::new(5, 15), Window::new(10, 20)]
        );
    }

    #[test]
    fn closing_respects_grace() {
        let w = TimeWindows::tumbling(Duration::from_millis(10)).grace(Duration::from_millis(5));
        assert!(!w.is_closed(10, 14));
        assert!(w.is_closed(10, 15));
        assert!(!w.is_closed(10, i64::MIN));
    }

    #[test]
    fn sessions_merge_within_the_gap() {
        let s = SessionWindows::with_inactivity_gap(Duration::from_millis(5));
        assert!(s.overlaps(Window::new(10, 20), 25));
        assert!(s.overlaps(Window::new(10, 20), 5));
        assert!(!s.overlaps(Window::new(10, 20), 26));
    }
}
