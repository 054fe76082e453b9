//! §7–§9 as code: the continuity sections of the policy file (with located errors), the
//! customer-update cadence, post-mortem deadlines, role checks, reminders and plan reviews,
//! judged at injected instants.

use bulwark_policy::commitments::{check, role_findings, roles_aspect};
use bulwark_policy::compliance::Verdict;
use bulwark_policy::config::{Config, NotifyEvent};
use bulwark_policy::continuity::Cause;
use bulwark_policy::incident::{
    IncidentFact, ReminderKind, evaluate_postmortems, evaluate_updates, reminders,
};
use bulwark_policy::review::{ReviewFacts, Topology, diff, evaluate_review, triggers};
use chrono::{DateTime, Duration, TimeZone, Utc};

const BASE: &str = r#"
[repositories.primary]
url = "/b/p"
region = "eu-west-1"

[repositories.offsite]
url = "/b/o"
region = "us-east-1"
replica_of = "primary"

[datasets.app-db]
kind = "sqlite"
source = "app.db"
tier = "critical"
schedule = "daily at 02:00"

[notifications.ic-pager]
webhook = "http://127.0.0.1:9/ic"
on = ["update_due"]

[notifications.ic-backup]
webhook = "http://127.0.0.1:9/backup"
on = ["update_overdue"]

[notifications.customers]
webhook = "http://127.0.0.1:9/customers"

[roles.incident-commander]
owner = "carol"
alternates = ["dave"]
channels = ["ic-pager"]
alternate_channels = ["ic-backup"]
email = "ic@example.com"
phone = "+44 20 7946 0000"
on_call = "24/7 rota"

[calendar]
time_zone = "Europe/London"
holidays = ["GB-ENG", "2026-12-24"]

[incidents]
owner = "incident-commander"
primary_unreachable_after = "2h"
severity = { rpo_breached = 1, drill_failed = 0 }

[review]
after_sev1 = "14d"

[status_page]
subscribers = ["customers"]
"#;

fn parse(text: &str) -> Config {
    Config::parse("bulwark.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Config::parse("bulwark.toml", text).unwrap_err().to_string()
}

fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

#[test]
fn the_sections_resolve_with_their_defaults() {
    let c = parse(BASE);
    let k = &c.continuity;
    assert_eq!(k.calendar.time_zone.name(), "Europe/London");
    assert_eq!(k.calendar.countries.len(), 1);
    assert!(
        !k.calendar
            .is_business_day(chrono::NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())
    );
    assert_eq!(k.incidents.owner.as_deref(), Some("incident-commander"));
    assert_eq!(k.incidents.severity.get(&Cause::RpoBreached), Some(&1));
    assert_eq!(
        k.incidents.severity.get(&Cause::DrillFailed),
        None,
        "0 opens none"
    );
    assert_eq!(
        k.incidents.severity.get(&Cause::PrimaryUnreachable),
        Some(&2)
    );
    assert_eq!(k.incidents.primary_unreachable_after.as_secs(), 7200);
    assert_eq!(k.incidents.update_reminder_before.as_secs(), 1800);
    assert_eq!(k.review.after_sev1.as_secs(), 14 * 86_400);
    assert_eq!(k.review.after_change.as_secs(), 30 * 86_400);
    assert_eq!(k.status_page.subscribers, ["customers"]);
    // A subscriber without `on` hears customer updates only; other channels keep theirs.
    assert_eq!(
        c.notifications["customers"].on,
        [NotifyEvent::IncidentUpdate]
    );
    assert_eq!(c.notifications["ic-pager"].on, [NotifyEvent::UpdateDue]);
    let r = &c.roles["incident-commander"];
    assert_eq!(
        (r.channels.as_slice(), r.alternate_channels.as_slice()),
        (
            &["ic-pager".to_string()][..],
            &["ic-backup".to_string()][..]
        )
    );
    assert_eq!(r.phone.as_deref(), Some("+44 20 7946 0000"));
    // Nothing continuity-related is required: a file without the sections has the defaults.
    let bare = parse("[repositories.p]\nurl = \"/b\"\n");
    assert_eq!(bare.continuity.calendar.time_zone.name(), "UTC");
    assert_eq!(bare.continuity.incidents.postmortem_for, [1, 2]);
}

#[test]
fn mistakes_are_refused_where_they_are_written() {
    let cases = [
        (
            BASE.replace("\"Europe/London\"", "\"Europe/Londn\""),
            "bulwark.toml:38:13: calendar.time_zone: 'Europe/Londn' is not an IANA time zone",
        ),
        (
            BASE.replace("\"GB-ENG\"", "\"Narnia\""),
            "bulwark.toml:39:13: calendar.holidays: 'Narnia' is neither a date",
        ),
        (
            BASE.replace("owner = \"incident-commander\"", "owner = \"nobody\""),
            "bulwark.toml:42:9: incidents.owner: no role named 'nobody'",
        ),
        (
            BASE.replace("rpo_breached = 1", "rpo_breach = 1"),
            "incidents.severity.rpo_breach: unknown cause",
        ),
        (
            BASE.replace("rpo_breached = 1", "rpo_breached = 7"),
            "incidents.severity.rpo_breached: SEV-7 does not exist",
        ),
        (
            BASE.replace("channels = [\"ic-pager\"]", "channels = [\"pager\"]"),
            "bulwark.toml:28:1: roles.incident-commander: no notification channel named 'pager'",
        ),
        (
            BASE.replace(
                "subscribers = [\"customers\"]",
                "subscribers = [\"ic-pager\"]",
            ),
            "bulwark.toml:19:7: notifications.ic-pager.on: a status subscriber hears only customer updates",
        ),
        (
            BASE.replace(
                "subscribers = [\"customers\"]",
                "subscribers = [\"client\"]",
            ),
            "status_page.subscribers: no notification channel named 'client'",
        ),
        (
            format!("{BASE}\n[calendar.extra]\n"),
            "unknown field `extra`",
        ),
    ];
    for (text, want) in cases {
        let got = error(&text);
        assert!(got.contains(want), "wanted {want:?}, got {got:?}");
    }
    let week = BASE.replace(
        "holidays = [\"GB-ENG\", \"2026-12-24\"]",
        "weekend = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]",
    );
    assert!(
        error(&week).contains("every day is weekend"),
        "{}",
        error(&week)
    );
}

fn roles(text: &str) -> Vec<(bool, String, String)> {
    let c = parse(&format!("[repositories.p]\nurl = \"/b\"\n{text}"));
    role_findings(&c)
        .into_iter()
        .map(|f| (f.ok, f.subject, f.detail))
        .collect()
}

#[test]
fn policy_check_fails_a_role_that_depends_on_one_person() {
    // No alternate.
    let f = roles("[roles.dba]\nowner = \"alice\"\n");
    assert_eq!(f.len(), 1);
    assert!(!f[0].0 && f[0].2.contains("has no alternate"), "{f:?}");
    // The owner as their own alternate: refused even beside a real alternate.
    let f = roles("[roles.dba]\nowner = \"alice\"\nalternates = [\"alice\", \"bob\"]\n");
    assert!(
        !f[0].0
            && f[0]
                .2
                .contains("alice is listed as an alternate of their own role"),
        "{f:?}"
    );
    let f = roles("[roles.dba]\nowner = \"alice\"\nalternates = [\"alice\"]\n");
    assert!(!f[0].0, "{f:?}");
    // One person alone in several critical roles: a finding about the person.
    let f = roles(
        "[roles.dba]\nowner = \"alice\"\n[roles.ic]\nowner = \"alice\"\n[roles.ops]\nowner = \"bob\"\nalternates = [\"carol\"]\n",
    );
    let person: Vec<_> = f.iter().filter(|x| x.1 == "alice").collect();
    assert_eq!(person.len(), 1, "{f:?}");
    assert!(
        person[0]
            .2
            .contains("only holder of 2 critical roles (dba, ic)"),
        "{f:?}"
    );
    assert!(f.iter().any(|x| x.1 == "ops" && x.0));
    // A role that is not critical needs no alternate.
    let f = roles(
        "[roles.intern]\nowner = \"zed\"\ncritical = false\n[roles.ic]\nowner = \"a\"\nalternates = [\"b\"]\n",
    );
    assert!(f.iter().all(|x| x.0), "{f:?}");
    // Covered everywhere: policy check and status agree.
    let c = parse(BASE);
    assert!(
        check(&c)
            .iter()
            .filter(|f| f.commitment == "roles")
            .all(|f| f.ok)
    );
    assert_eq!(roles_aspect(&c).verdict, Verdict::Met);
    let c = parse("[repositories.p]\nurl = \"/b\"\n[roles.dba]\nowner = \"alice\"\n");
    let a = roles_aspect(&c);
    assert_eq!(a.verdict, Verdict::Breached);
    assert!(a.reason.contains("has no alternate"));
}

fn incident(sev: u8, opened: DateTime<Utc>) -> IncidentFact {
    IncidentFact {
        id: "INC-7".into(),
        sev,
        title: "orders API down".into(),
        owner: Some("incident-commander".into()),
        opened,
        resolved: None,
        customer_updates: Vec::new(),
        postmortem: None,
    }
}

#[test]
fn the_update_cadence_is_met_at_risk_then_breached_as_the_clock_moves() {
    let c = parse(BASE);
    let mut i = incident(1, t(2, 9, 0));
    i.customer_updates = vec![t(2, 9, 0), t(2, 10, 30)];
    let judge = |i: &IncidentFact, now| evaluate_updates(&c, std::slice::from_ref(i), now);
    assert_eq!(
        i.next_update_due(c.targets.status_update_every),
        Some(t(2, 12, 30))
    );
    assert_eq!(judge(&i, t(2, 11, 0)).verdict, Verdict::Met);
    let a = judge(&i, t(2, 12, 5));
    assert_eq!(a.verdict, Verdict::AtRisk, "{a:?}");
    assert!(
        a.reason.contains("due 2026-11-02 12:30 UTC (in 25m)"),
        "{}",
        a.reason
    );
    let a = judge(&i, t(2, 13, 0));
    assert_eq!(a.verdict, Verdict::Breached);
    assert!(a.reason.contains("is 30m overdue"), "{}", a.reason);
    // Silent for 5 h 10 m at a 2-hour cadence: two updates missed.
    assert_eq!(
        i.missed_updates(c.targets.status_update_every, t(2, 15, 40)),
        [t(2, 12, 30), t(2, 14, 30)]
    );
    // An update exactly at the due time is in time.
    i.customer_updates.push(t(2, 12, 30));
    assert!(
        i.missed_updates(c.targets.status_update_every, t(2, 13, 0))
            .is_empty()
    );
    // Resolved: no cadence, but the misses stay on record (and breached) for 30 days.
    let mut late = incident(2, t(2, 9, 0));
    late.resolved = Some(t(2, 13, 0));
    assert_eq!(
        late.missed_updates(c.targets.status_update_every, t(3, 0, 0)),
        [t(2, 11, 0)]
    );
    assert_eq!(late.next_update_due(c.targets.status_update_every), None);
    let a = judge(&late, t(20, 0, 0));
    assert_eq!(a.verdict, Verdict::Breached);
    assert!(
        a.reason.contains("missed 1 customer updates"),
        "{}",
        a.reason
    );
    let after = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
    assert_eq!(judge(&late, after).verdict, Verdict::Met);
    // SEV-3 has no cadence.
    let quiet = incident(3, t(2, 9, 0));
    assert_eq!(judge(&quiet, t(9, 0, 0)).verdict, Verdict::Met);
    assert!(
        quiet
            .missed_updates(c.targets.status_update_every, t(9, 0, 0))
            .is_empty()
    );
}

#[test]
fn a_post_mortem_is_due_ten_business_days_after_resolution_on_the_calendar() {
    let c = parse(BASE);
    // Resolved Friday 18 December 2026, 23:40 London: 21, 22, 23, (24 company day, 25, 28
    // bank holidays), 29, 30, 31, (1 Jan), 4, 5, 6, 7: due at the end of Thursday 7 January.
    let mut i = incident(1, Utc.with_ymd_and_hms(2026, 12, 18, 20, 0, 0).unwrap());
    i.resolved = Some(Utc.with_ymd_and_hms(2026, 12, 18, 23, 40, 0).unwrap());
    let due = Utc.with_ymd_and_hms(2027, 1, 8, 0, 0, 0).unwrap();
    assert_eq!(i.postmortem_due(&c), Some(due));
    let judge = |i: &IncidentFact, now| evaluate_postmortems(&c, std::slice::from_ref(i), now);
    let jan = |d, h| Utc.with_ymd_and_hms(2027, 1, d, h, 0, 0).unwrap();
    assert_eq!(judge(&i, jan(4, 9)).verdict, Verdict::Met);
    let a = judge(&i, jan(6, 9));
    assert_eq!(a.verdict, Verdict::AtRisk, "{a:?}");
    assert!(a.reason.contains("2 business days left"), "{}", a.reason);
    assert_eq!(judge(&i, jan(8, 0)).verdict, Verdict::Breached);
    i.postmortem = Some(jan(7, 16));
    assert_eq!(judge(&i, jan(8, 1)).verdict, Verdict::Met);
    i.postmortem = Some(jan(9, 10));
    let a = judge(&i, jan(12, 0));
    assert_eq!(a.verdict, Verdict::Breached);
    assert!(
        a.reason.contains("came 34h after its deadline"),
        "{}",
        a.reason
    );
    // SEV-3 needs none.
    let mut minor = incident(3, jan(4, 9));
    minor.resolved = Some(jan(4, 10));
    assert_eq!(minor.postmortem_due(&c), None);
}

#[test]
fn reminders_go_to_the_owner_before_and_escalate_after_each_deadline() {
    let c = parse(BASE);
    let mut i = incident(2, t(2, 9, 0));
    assert!(reminders(&c, std::slice::from_ref(&i), t(2, 10, 0)).is_empty());
    let r = reminders(&c, std::slice::from_ref(&i), t(2, 10, 40));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].kind, r[0].due),
        (ReminderKind::UpdateDue, t(2, 11, 0))
    );
    assert!(!r[0].kind.escalates());
    let r = reminders(&c, std::slice::from_ref(&i), t(2, 11, 5));
    assert_eq!(
        (r[0].kind, r[0].due),
        (ReminderKind::UpdateOverdue, t(2, 11, 0))
    );
    assert!(r[0].kind.escalates());
    assert!(r[0].message.contains("is 5m overdue"), "{}", r[0].message);
    i.resolved = Some(t(2, 11, 30));
    // Resolved Monday 2 Nov: due at the end of Monday 16 Nov.
    let r = reminders(&c, std::slice::from_ref(&i), t(13, 9, 0));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].kind, r[0].due),
        (ReminderKind::PostmortemDue, t(17, 0, 0))
    );
    let r = reminders(&c, std::slice::from_ref(&i), t(17, 0, 0));
    assert_eq!(r[0].kind, ReminderKind::PostmortemOverdue);
    i.postmortem = Some(t(17, 9, 0));
    assert!(reminders(&c, std::slice::from_ref(&i), t(18, 0, 0)).is_empty());
}

#[test]
fn a_topology_change_is_measured_and_a_review_falls_due() {
    let c = parse(BASE);
    let before = Topology::of(&c);
    // A schedule is not topology; a region, a tier or a role holder is.
    let rescheduled = parse(&BASE.replace("daily at 02:00", "every 6h"));
    assert_eq!(
        Topology::of(&rescheduled).fingerprint(),
        before.fingerprint()
    );
    let moved = parse(&BASE.replace("\"us-east-1\"", "\"us-west-2\""));
    let after = Topology::of(&moved);
    assert_ne!(after.fingerprint(), before.fingerprint());
    let d = diff(&before.lines, &after.lines);
    assert_eq!(
        d.removed,
        ["repository offsite region=us-east-1 replica_of=primary"]
    );
    assert_eq!(
        d.added,
        ["repository offsite region=us-west-2 replica_of=primary"]
    );
    let holder = parse(&BASE.replace("alternates = [\"dave\"]", "alternates = [\"erin\"]"));
    assert!(diff(&before.lines, &Topology::of(&holder).lines).added[0].contains("alternates=erin"));

    let reviewed = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    let mut f = ReviewFacts {
        last: Some(reviewed),
        last_fingerprint: Some(before.fingerprint()),
        current_fingerprint: before.fingerprint(),
        changed_at: None,
        sev1_resolved: Vec::new(),
        adopted: None,
    };
    assert_eq!(evaluate_review(&c, &f, t(1, 0, 0)).verdict, Verdict::Met);
    let a = evaluate_review(&c, &f, Utc.with_ymd_and_hms(2027, 2, 10, 0, 0, 0).unwrap());
    assert_eq!(
        a.verdict,
        Verdict::AtRisk,
        "the yearly review is near: {a:?}"
    );
    assert_eq!(
        evaluate_review(&c, &f, Utc.with_ymd_and_hms(2027, 3, 2, 0, 0, 0).unwrap()).verdict,
        Verdict::Breached
    );
    // A change seen on 10 November: due within 30 days.
    f.current_fingerprint = after.fingerprint();
    f.changed_at = Some(t(10, 2, 0));
    let tr = triggers(&c, &f, t(11, 0, 0));
    assert_eq!(tr[0].kind, "change");
    assert_eq!(tr[0].due, t(10, 2, 0) + Duration::days(30));
    assert_eq!(
        evaluate_review(&c, &f, t(11, 0, 0)).verdict,
        Verdict::AtRisk
    );
    assert_eq!(
        evaluate_review(&c, &f, Utc.with_ymd_and_hms(2026, 12, 11, 0, 0, 0).unwrap()).verdict,
        Verdict::Breached
    );
    // A SEV-1 resolved: due within 14 days of it.
    f.current_fingerprint = before.fingerprint();
    f.sev1_resolved = vec![("INC-3".into(), t(20, 12, 0))];
    let a = evaluate_review(&c, &f, t(21, 0, 0));
    assert_eq!(a.verdict, Verdict::AtRisk);
    assert!(
        a.reason.contains("INC-3 (SEV-1) resolved 2026-11-20"),
        "{}",
        a.reason
    );
    let a = evaluate_review(&c, &f, t(30, 0, 0));
    assert!(a.reason.contains("due by 2026-12-04"), "{}", a.reason);
    // Never reviewed: breached at once.
    let none = ReviewFacts {
        current_fingerprint: before.fingerprint(),
        ..ReviewFacts::default()
    };
    let a = evaluate_review(&c, &none, t(1, 0, 0));
    assert_eq!(
        (a.verdict, a.reason.as_str()),
        (Verdict::Breached, "no plan review on record")
    );
    // A plan kept since 1 March is due its first review a year later.
    let young = ReviewFacts {
        adopted: Some(reviewed),
        ..none
    };
    assert_eq!(
        evaluate_review(&c, &young, t(1, 0, 0)).verdict,
        Verdict::Met
    );
    let a = evaluate_review(
        &c,
        &young,
        Utc.with_ymd_and_hms(2027, 3, 2, 0, 0, 0).unwrap(),
    );
    assert_eq!(a.verdict, Verdict::Breached);
    assert!(
        a.reason.contains("since the ledger began (2026-03-01)"),
        "{}",
        a.reason
    );
}
