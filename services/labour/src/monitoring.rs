//! Compulsory monitoring of one case: its schedule, the contacts that
//! reached the person, and which planned visits are overdue at a given
//! time. Pure: no clock, no I/O; the caller passes `now`.
//!
//! # When a visit is overdue
//! Each planned visit needs its own monitoring contact, taken in order: the
//! contacts made since the schedule was recorded fulfil the visits one by
//! one, and the contact for a visit must come after the previous visit was
//! due (so three contacts in the first week do not cover three months).
//! A late contact still fulfils the visit it catches up on. A visit is
//! overdue when it is due (`now >= due`) and not fulfilled.
//!
//! - A contact that did not reach the person (`CONTACT_MODE_ATTEMPT_FAILED`)
//!   fulfils nothing.
//! - A new schedule replaces the previous one (the latest by `occurred_at`);
//!   only contacts from its recording on count for it.
//! - A closed case has no overdue visits.
//! - The same contact seen twice (e.g. received and also forwarded) counts
//!   once.

use std::collections::BTreeSet;

use waymark_proto::v1 as pb;
use waymark_types::Timestamp;

/// What this journal says about monitoring one case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CaseMonitoring {
    /// The latest schedule: when it was recorded, and its visits ascending.
    schedule: Option<(Timestamp, Vec<Timestamp>)>,
    /// Contacts that reached the person: (when, event id).
    contacts: BTreeSet<(Timestamp, String)>,
    closed: bool,
}

impl CaseMonitoring {
    /// A schedule recorded at `at`; replaces an older one.
    pub(crate) fn scheduled(&mut self, at: Timestamp, mut visits: Vec<Timestamp>) {
        if self.schedule.as_ref().is_some_and(|(prev, _)| *prev > at) {
            return;
        }
        visits.sort_unstable();
        visits.dedup();
        self.schedule = Some((at, visits));
    }

    /// A monitoring contact made at `at` (event `id`) by `mode`.
    pub(crate) fn contacted(&mut self, at: Timestamp, id: &str, mode: i32) {
        let reached = matches!(
            pb::ContactMode::try_from(mode),
            Ok(pb::ContactMode::InPerson | pb::ContactMode::Phone | pb::ContactMode::Video)
        );
        if reached {
            self.contacts.insert((at, id.to_owned()));
        }
    }

    /// The case was closed.
    pub(crate) fn closed(&mut self) {
        self.closed = true;
    }

    /// The planned visits that are overdue at `now`, oldest first.
    pub(crate) fn overdue(&self, now: Timestamp) -> Vec<Timestamp> {
        let Some((since, visits)) = &self.schedule else {
            return Vec::new();
        };
        if self.closed {
            return Vec::new();
        }
        let mut contacts = self
            .contacts
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| t >= since)
            .peekable();
        let mut window = *since;
        let mut out = Vec::new();
        for due in visits {
            while contacts.next_if(|c| *c < window).is_some() {}
            if contacts.next().is_none() && now >= *due {
                out.push(*due);
            }
            window = window.max(*due);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_PERSON: i32 = pb::ContactMode::InPerson as i32;

    fn day(d: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).plus_days(d)
    }

    /// Visits on days 30, 60 and 90 of a schedule recorded on day 0.
    fn quarterly() -> CaseMonitoring {
        let mut m = CaseMonitoring::default();
        m.scheduled(day(0), vec![day(30), day(60), day(90)]);
        m
    }

    #[test]
    fn nothing_is_overdue_before_it_is_due() {
        let m = quarterly();
        assert!(m.overdue(day(29)).is_empty());
        assert_eq!(m.overdue(day(30)), vec![day(30)]);
        assert_eq!(m.overdue(day(61)), vec![day(30), day(60)]);
    }

    #[test]
    fn a_contact_fulfils_one_visit_and_a_late_one_catches_up() {
        let mut m = quarterly();
        m.contacted(day(20), "a", IN_PERSON);
        assert!(m.overdue(day(59)).is_empty());
        assert_eq!(m.overdue(day(60)), vec![day(60)]);
        m.contacted(day(65), "b", IN_PERSON);
        assert!(m.overdue(day(89)).is_empty(), "day 60 caught up");
        assert_eq!(m.overdue(day(100)), vec![day(90)]);
    }

    #[test]
    fn early_contacts_do_not_cover_later_visits() {
        let mut m = quarterly();
        for (i, d) in [1, 2, 3].into_iter().enumerate() {
            m.contacted(day(d), &i.to_string(), IN_PERSON);
        }
        assert_eq!(m.overdue(day(95)), vec![day(60), day(90)]);
    }

    #[test]
    fn failed_attempts_duplicates_and_old_contacts_count_for_nothing() {
        let mut m = CaseMonitoring::default();
        m.contacted(day(-5), "before", IN_PERSON);
        m.scheduled(day(0), vec![day(30), day(60)]);
        m.contacted(day(10), "x", pb::ContactMode::AttemptFailed as i32);
        assert_eq!(m.overdue(day(31)), vec![day(30)]);
        m.contacted(day(40), "y", pb::ContactMode::Phone as i32);
        m.contacted(day(40), "y", pb::ContactMode::Phone as i32);
        assert_eq!(m.overdue(day(61)), vec![day(60)]);
    }

    #[test]
    fn a_new_schedule_replaces_the_old_and_closure_ends_monitoring() {
        let mut m = quarterly();
        m.scheduled(day(35), vec![day(70)]);
        m.scheduled(day(-1), vec![day(1)]);
        assert!(m.overdue(day(69)).is_empty(), "day 30 is no longer planned");
        assert_eq!(m.overdue(day(70)), vec![day(70)]);
        m.closed();
        assert!(m.overdue(day(200)).is_empty());
    }
}
