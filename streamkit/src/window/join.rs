//! [`JoinWindows`]: how close in time two records must be to meet in a stream-stream join.

use std::time::Duration;

use super::millis;

/// The time bounds of a stream-stream join (Kafka Streams' `JoinWindows`): a left record at
/// `t` joins the right records of its key whose timestamps lie in `[t - before, t + after]`.
///
/// Every record defines its own window, so the windows slide with the data: a left record's
/// reaches `after` past its timestamp, a right record's `before`. A window *closes* once
/// stream time (the largest timestamp either side has seen) passes its end plus the grace
/// period. A record arriving for a closed window is *late*: dropped and counted. A buffered
/// record meets partners only while its window is open; when it closes, a left or outer join
/// emits the record if it found no partner (with `None` for the other side). So a `None`
/// result is final: it is never followed by a joined result for the same record.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamkit::window::JoinWindows;
/// // Records at most 5 s apart, accepted up to 2 s late (Kafka Streams'
/// // `JoinWindows.ofTimeDifferenceAndGrace(5 s, 2 s)`).
/// let w = JoinWindows::of(Duration::from_secs(5)).grace(Duration::from_secs(2));
/// assert_eq!((w.before_ms, w.after_ms, w.grace_ms), (5_000, 5_000, 2_000));
/// // Only right records up to 1 s *after* the left one.
/// let w = JoinWindows::of(Duration::from_secs(1)).before(Duration::ZERO);
/// assert_eq!((w.before_ms, w.after_ms), (0, 1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// How far before a left record's timestamp a right record may lie, in ms.
    pub before_ms: i64,
    /// How far after a left record's timestamp a right record may lie, in ms.
    pub after_ms: i64,
    /// How long after a record's window ends out-of-order records are still accepted, in ms.
    pub grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `time_difference` apart, in either direction, join. Grace = 0
    /// (Kafka Streams' `ofTimeDifferenceWithNoGrace`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of(Duration::from_secs(5));
    /// assert_eq!((w.before_ms, w.after_ms, w.grace_ms), (5_000, 5_000, 0));
    /// ```
    pub fn of(time_difference: Duration) -> Self {
        let d = millis(time_difference);
        JoinWindows {
            before_ms: d,
            after_ms: d,
            grace_ms: 0,
        }
    }

    /// Records at most `time_difference` apart join; records are accepted up to `grace`
    /// after their window ends (Kafka Streams' `ofTimeDifferenceAndGrace`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(2));
    /// assert_eq!(w, JoinWindows::of(Duration::from_secs(5)).grace(Duration::from_secs(2)));
    /// assert_eq!(w.grace_ms, 2_000);
    /// ```
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        Self::of(time_difference).grace(grace)
    }

    /// Changes how far *before* a left record right records may lie; `after` is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of(Duration::from_secs(5)).before(Duration::from_secs(1));
    /// assert_eq!((w.before_ms, w.after_ms), (1_000, 5_000));
    /// ```
    pub fn before(mut self, before: Duration) -> Self {
        self.before_ms = millis(before);
        self
    }

    /// Changes how far *after* a left record right records may lie; `before` is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of(Duration::from_secs(5)).after(Duration::ZERO);
    /// assert_eq!((w.before_ms, w.after_ms), (5_000, 0));
    /// ```
    pub fn after(mut self, after: Duration) -> Self {
        self.after_ms = millis(after);
        self
    }

    /// Accept records up to `grace` after their window ends. Default = 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of(Duration::from_secs(5)).grace(Duration::from_millis(500));
    /// assert_eq!(w.grace_ms, 500);
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }

    /// The span of one window, `before + after`, in ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::window::JoinWindows;
    /// let w = JoinWindows::of(Duration::from_secs(5)).after(Duration::from_secs(2));
    /// assert_eq!(w.size_ms(), 7_000);
    /// ```
    pub fn size_ms(&self) -> i64 {
        self.before_ms.saturating_add(self.after_ms)
    }

    /// How long the changelogs of a join's buffers keep records (Kafka Streams' join stores
    /// keep `before + after + 1 + grace`; a buffered record is needed for at most
    /// `max(before, after) + grace`).
    pub(crate) fn retention_ms(&self) -> i64 {
        self.size_ms()
            .saturating_add(1)
            .saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_windows_keep_the_other_bound() {
        let w = JoinWindows::of(Duration::from_millis(10))
            .after(Duration::from_millis(3))
            .grace(Duration::from_millis(2));
        assert_eq!((w.before_ms, w.after_ms, w.grace_ms), (10, 3, 2));
        assert_eq!(w.size_ms(), 13);
        assert_eq!(w.retention_ms(), 16);
        let w = JoinWindows::of_time_difference_and_grace(
            Duration::from_millis(4),
            Duration::from_millis(1),
        );
        assert_eq!((w.before_ms, w.after_ms, w.grace_ms), (4, 4, 1));
    }
}
