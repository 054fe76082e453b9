//! Incidents, post-mortems, roles and plan reviews kept in a real ledger, judged at injected
//! instants, with customer updates delivered to a status subscriber's webhook on loopback (and
//! internal notes never), post-mortem documents stored content-addressed, automatic incidents
//! opened and closed by what breaks, and the policy file's git commit read from `.git`.

#[path = "support/http.rs"]
mod http;

#[path = "support/site.rs"]
mod site;

use std::path::Path;

use bulwark_app::incident::{
    Action, Breaks, IncidentDetails, OpenRequest, UpdateRequest, aspects, find, incidents, open,
    reconcile, record_missed_update, resolve, update,
};
use bulwark_app::postmortem::{self, Source};
use bulwark_app::review::{self, git_commit};
use bulwark_app::{Create, Credentials, Error, OpenOptions, Workspace, roles};
use bulwark_ledger::{EventFilter, EventKind};
use bulwark_policy::compliance::Verdict;
use bulwark_policy::continuity::Cause;
use bulwark_policy::incident::IncidentState;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http::Hook;

fn policy(customers: &str, ops: &str) -> String {
    format!(
        r#"
[repositories.primary]
url = "/nonexistent/bulwark-test/primary"
region = "eu-west-1"

[datasets.app-db]
kind = "sqlite"
source = "app.db"
tier = "critical"
schedule = "daily at 02:00"

[notifications.ops]
webhook = "{ops}"
on = ["incident_opened", "incident_resolved"]

[notifications.customers]
webhook = "{customers}"

[roles.incident-commander]
owner = "carol"
alternates = ["dave"]
channels = ["ops"]

[roles.backup-operator]
owner = "alice"
alternates = ["bob"]

[calendar]
time_zone = "Europe/London"
holidays = ["GB-ENG"]

[incidents]
owner = "incident-commander"
severity = {{ rpo_breached = 1, drill_failed = 0 }}

[status_page]
subscribers = ["customers"]
"#
    )
}

fn workspace(dir: &Path, text: &str) -> Workspace {
    let config = dir.join("bulwark.toml");
    std::fs::write(&config, text).unwrap();
    Workspace::open(
        &config,
        OpenOptions {
            credentials: Credentials::default(),
            create: Create::Ledger,
            cache: false,
        },
    )
    .unwrap()
}

/// Monday 30 November 2026 plus `h` hours and `m` minutes (UTC, which is London time then).
fn at(h: i64, m: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap() + Duration::hours(h) + Duration::minutes(m)
}

fn opening(title: &str, sev: u8, t: DateTime<Utc>) -> OpenRequest {
    OpenRequest {
        title: title.into(),
        sev,
        owner: None,
        state: IncidentState::Investigating,
        message: Some("We are looking into delayed backups.".into()),
        internal: false,
        eta: None,
        cause: None,
        subject: None,
        at: t,
    }
}

fn note(id: &str, message: &str, internal: bool, t: DateTime<Utc>) -> UpdateRequest {
    UpdateRequest {
        id: id.into(),
        state: None,
        message: message.into(),
        internal,
        eta: None,
        sev: None,
        owner: None,
        at: t,
    }
}

fn verdict(ws: &Workspace, name: &str, t: DateTime<Utc>) -> (Verdict, String) {
    let a = aspects(ws, t)
        .unwrap()
        .into_iter()
        .find(|a| a.name == name)
        .unwrap();
    (a.verdict, a.reason)
}

fn refused(r: Result<impl std::fmt::Debug, Error>, wanted: &str) {
    match r {
        Err(Error::Request { message, hint }) => {
            assert!(message.contains(wanted), "{message}");
            assert!(!hint.is_empty());
        }
        other => panic!("wanted a refusal containing {wanted:?}, got {other:?}"),
    }
}

#[test]
fn an_incident_keeps_its_cadence_and_customers_hear_only_customer_updates() {
    let dir = tempfile::tempdir().unwrap();
    let customers = Hook::statuses(&[]);
    let ops = Hook::statuses(&[]);
    let ws = workspace(
        dir.path(),
        &policy(&customers.url("/status"), &ops.url("/ops")),
    );

    let o = open(&ws, &opening("Backups of app-db are delayed", 2, at(9, 0))).unwrap();
    let id = o.incident.id.clone();
    assert_eq!(id, "INC-1");
    assert_eq!(o.incident.owner, "incident-commander", "the policy's owner");
    assert!(o.deliveries.iter().all(|d| d.ok), "{:?}", o.deliveries);
    // Customers got the opening message; the operators got the opening (with its owner).
    let c = customers.requests();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].method.as_str(), c[0].path.as_str()),
        ("POST", "/status")
    );
    assert_eq!(c[0].header("content-type"), Some("application/json"));
    assert!(!c[0].headers.is_empty());
    let body = c[0].json();
    assert_eq!(body["event"], "incident_update");
    let text = body["message"].as_str().unwrap();
    assert!(
        text.contains("Backups of app-db are delayed")
            && text.contains("[investigating]")
            && text.contains("We are looking into delayed backups."),
        "{text}"
    );
    assert!(
        !text.contains("incident-commander"),
        "no owner for customers: {text}"
    );
    let o_req = ops.requests();
    assert_eq!(o_req.len(), 1);
    assert_eq!(o_req[0].json()["event"], "incident_opened");
    assert!(
        o_req[0].json()["message"]
            .as_str()
            .unwrap()
            .contains("owned by incident-commander")
    );

    // The cadence: 2h by default. At 10:45 the update due at 11:00 is near.
    assert_eq!(verdict(&ws, "incident_updates", at(10, 0)).0, Verdict::Met);
    let (v, why) = verdict(&ws, "incident_updates", at(10, 45));
    assert_eq!(v, Verdict::AtRisk, "{why}");
    // An internal note neither resets the cadence nor reaches customers.
    let secret = "root cause: the NAS at 10.0.0.5 rebooted, ticket OPS-991";
    update(&ws, &note(&id, secret, true, at(10, 50))).unwrap();
    assert_eq!(customers.requests().len(), 1);
    let (v, why) = verdict(&ws, "incident_updates", at(11, 10));
    assert_eq!(v, Verdict::Breached, "{why}");
    assert!(
        why.contains("INC-1 (SEV-2)") && why.contains("10m overdue"),
        "{why}"
    );

    // A customer update with a new state and an ETA.
    let mut u = note(
        &id,
        "We found the cause and are fixing it.",
        false,
        at(11, 20),
    );
    u.state = Some(IncidentState::Identified);
    u.eta = Some(at(14, 0));
    update(&ws, &u).unwrap();
    let c = customers.requests();
    assert_eq!(c.len(), 2);
    let text = c[1].json()["message"].as_str().unwrap().to_string();
    assert!(
        text.contains("[identified]") && text.contains("ETA 2026-11-30 14:00 UTC"),
        "{text}"
    );
    let i = find(&ws, "1").unwrap();
    assert_eq!(
        (i.state, i.eta),
        (IncidentState::Identified, Some(at(14, 0)))
    );
    assert_eq!(i.timeline.len(), 3);
    assert_eq!(i.customer_updates().count(), 2);
    // The slot at 11:00 was missed; it stays on record in the judgement for 30 days.
    let (v, why) = verdict(&ws, "incident_updates", at(12, 0));
    assert_eq!(v, Verdict::Breached);
    assert!(why.contains("missed 1 customer updates"), "{why}");
    assert!(record_missed_update(&ws, &id, at(11, 0)).unwrap());
    assert!(
        !record_missed_update(&ws, &id, at(11, 0)).unwrap(),
        "once per slot"
    );
    assert_eq!(find(&ws, &id).unwrap().missed_updates, [at(11, 0)]);

    resolve(
        &ws,
        &id,
        Some("Backups are current again.".into()),
        at(12, 30),
    )
    .unwrap();
    let c = customers.requests();
    assert_eq!(c.len(), 3);
    assert!(
        c[2].json()["message"]
            .as_str()
            .unwrap()
            .contains("[resolved]")
    );
    assert_eq!(ops.requests().len(), 2, "opened and resolved");
    assert_eq!(ops.requests()[1].json()["event"], "incident_resolved");
    // No customer-bound request ever held the internal note.
    for r in customers.requests() {
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("NAS"), "{body}");
    }
    // But the ledger keeps it, as an internal step.
    let i = find(&ws, &id).unwrap();
    assert!(
        i.timeline
            .iter()
            .any(|u| u.internal && u.message.as_deref() == Some(secret))
    );
    assert_eq!(i.state, IncidentState::Resolved);

    // A resolved incident takes no more updates; mistakes are refused with a hint.
    refused(
        update(&ws, &note(&id, "more", false, at(13, 0))),
        "was resolved",
    );
    refused(find(&ws, "INC-9"), "no incident INC-9");
    refused(
        open(&ws, &opening("x", 7, at(13, 0))),
        "SEV-7 does not exist",
    );
    let mut o = opening("x", 2, at(13, 0));
    o.owner = Some("carol".into());
    refused(open(&ws, &o), "no role named 'carol'");
    let second = open(&ws, &opening("Second", 3, at(13, 0)))
        .unwrap()
        .incident
        .id;
    refused(
        update(&ws, &note(&second, "early", false, at(12, 0))),
        "nothing can happen to it before",
    );
    refused(
        update(&ws, &note(&second, "  ", false, at(14, 0))),
        "the message is empty",
    );
}

#[test]
fn a_post_mortem_is_stored_by_its_hash_and_judged_in_business_days() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[]);
    let ws = workspace(dir.path(), &policy(&hook.url("/c"), &hook.url("/o")));
    // A SEV-1 opened Friday 18 December and resolved that night, late, in London.
    let fri = Utc.with_ymd_and_hms(2026, 12, 18, 20, 0, 0).unwrap();
    let id = open(&ws, &opening("Outage", 1, fri)).unwrap().incident.id;
    refused(
        postmortem::submit(&ws, &id, &Source::Url("https://wiki/pm".into()), fri),
        "is not resolved",
    );
    resolve(&ws, &id, None, fri + Duration::minutes(220)).unwrap();
    // Ten business days: 21, 22, 23, 24, (25, 28 bank holidays), 29, 30, 31, (1 Jan), 4, 5, 6.
    let due = Utc.with_ymd_and_hms(2027, 1, 7, 0, 0, 0).unwrap();
    let jan = |d, h| Utc.with_ymd_and_hms(2027, 1, d, h, 0, 0).unwrap();
    let list = postmortem::list(&ws, jan(4, 9)).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].deadline, list[0].state), (Some(due), "pending"));
    assert_eq!(
        verdict(&ws, "postmortem", jan(4, 9)).0,
        Verdict::Met,
        "3 days left"
    );
    let (v, why) = verdict(&ws, "postmortem", jan(5, 9));
    assert_eq!(v, Verdict::AtRisk, "{why}");
    assert!(why.contains("2 business days left"), "{why}");
    assert_eq!(verdict(&ws, "postmortem", due).0, Verdict::Breached);
    assert_eq!(postmortem::list(&ws, due).unwrap()[0].state, "overdue");

    refused(
        postmortem::submit(&ws, &id, &Source::Url("ftp://x/y".into()), due),
        "not an http(s) address",
    );
    refused(
        postmortem::submit(&ws, &id, &Source::File(dir.path().join("missing.md")), due),
        "cannot read",
    );
    let doc = dir.path().join("INC-1 post-mortem.md");
    std::fs::write(&doc, b"# Outage\n\nTimeline, causes, actions.\n").unwrap();
    let late = due + Duration::hours(30);
    let s = postmortem::submit(&ws, &id, &Source::File(doc.clone()), late).unwrap();
    assert_eq!(s.late_by_s, Some(30 * 3600));
    let hash = s.reference.blake3.clone().unwrap();
    assert_eq!(
        hash,
        bulwark_ledger::hash_hex(&std::fs::read(&doc).unwrap())
    );
    let stored = Path::new(s.reference.stored.as_deref().unwrap()).to_path_buf();
    assert_eq!(
        stored,
        dir.path()
            .join("evidence/postmortems")
            .join(format!("{hash}.md"))
    );
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(&doc).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
    }
    // The hash is in the hashed event: the chain vouches for the document.
    let e = ws
        .ledger()
        .last(&EventKind::Incident, None, true)
        .unwrap()
        .unwrap();
    let d = IncidentDetails::of(&e).unwrap();
    assert_eq!(d.action, Action::Postmortem);
    assert_eq!(d.postmortem.unwrap().blake3.as_deref(), Some(hash.as_str()));
    assert!(ws.ledger().verify().unwrap().is_ok());
    // Late, and breached for it (within the 30-day look-back).
    assert_eq!(postmortem::list(&ws, late).unwrap()[0].state, "late");
    let (v, why) = verdict(&ws, "postmortem", late);
    assert_eq!(v, Verdict::Breached);
    assert!(why.contains("came 30h after its deadline"), "{why}");
    refused(
        postmortem::submit(&ws, &id, &Source::Url("https://wiki/pm".into()), late),
        "already has a post-mortem",
    );
}

use bulwark_app::events::Details;

#[test]
fn bulwark_opens_an_incident_for_what_breaks_and_closes_it_when_met_again() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[]);
    let text = format!(
        "{}\n[components.orders-api]\ndatasets = [\"app-db\"]\n",
        policy(&hook.url("/c"), &hook.url("/o"))
    );
    let ws = workspace(dir.path(), &text);
    let mut breaks = Breaks::default();
    breaks.past_rpo.insert("app-db".into());
    // A failed drill opens none: its SEV is 0 in this policy.
    breaks.drill_failed = true;
    let opened = reconcile(&ws, &breaks, at(3, 0)).unwrap();
    assert_eq!(opened.len(), 1);
    let i = &opened[0].incident;
    assert_eq!(
        (i.sev, i.cause, i.subject.as_deref(), i.owner.as_str()),
        (
            1,
            Some(Cause::RpoBreached),
            Some("app-db"),
            "incident-commander"
        )
    );
    // Customers see it on the component that holds the dataset, and nothing internal.
    let shown = bulwark_app::incident::public(
        ws.config(),
        &incidents(&ws).unwrap(),
        at(3, 30),
        bulwark_app::incident::RESOLVED_SHOWN,
    );
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].components, ["orders-api"]);
    assert_eq!(shown[0].updates.len(), 1);
    // Judged again while still breached: nothing new.
    assert!(reconcile(&ws, &breaks, at(4, 0)).unwrap().is_empty());
    // The primary is unreachable, but nothing ever reached it: no incident on that alone.
    breaks.unreachable.insert("primary".into());
    assert!(reconcile(&ws, &breaks, at(5, 0)).unwrap().is_empty());
    // Met again: it resolves itself, and its post-mortem clock starts.
    breaks = Breaks::default();
    let closed = reconcile(&ws, &breaks, at(6, 0)).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].incident.resolved, Some(at(6, 0)));
    assert!(
        closed[0]
            .incident
            .fact()
            .postmortem_due(ws.config())
            .is_some()
    );
    assert_eq!(incidents(&ws).unwrap().len(), 1);
    // Resolved incidents stay on the public page for a week, then leave it.
    let all = incidents(&ws).unwrap();
    let week = bulwark_app::incident::RESOLVED_SHOWN;
    let public = |t| bulwark_app::incident::public(ws.config(), &all, t, week).len();
    assert_eq!(public(at(6, 0) + week), 1);
    assert_eq!(public(at(6, 1) + week), 0);
    assert_eq!(public(at(2, 0)), 0, "not yet opened");
    // The event names the dataset, so `bulwark log --dataset app-db` shows it.
    let e = ws
        .ledger()
        .events(
            &EventFilter::all()
                .kind(EventKind::Incident)
                .dataset("app-db"),
        )
        .unwrap();
    assert_eq!(e.len(), 2, "the opening and the resolution");
}

#[test]
fn roles_name_who_covers_and_where_reminders_escalate() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[]);
    let text = policy(&hook.url("/c"), &hook.url("/o")).replace(
        "[roles.backup-operator]\nowner = \"alice\"\nalternates = [\"bob\"]",
        "[roles.backup-operator]\nowner = \"carol\"\n\n[roles.dba]\nowner = \"carol\"",
    );
    let ws = workspace(dir.path(), &text);
    open(&ws, &opening("Slow", 2, at(9, 0))).unwrap();
    let r = roles::report(&ws, at(10, 0)).unwrap();
    assert!(!r.ok);
    let ic = r
        .roles
        .iter()
        .find(|r| r.name == "incident-commander")
        .unwrap();
    assert_eq!(ic.open_incidents, ["INC-1"]);
    let before = roles::report(&ws, at(8, 0)).unwrap();
    assert!(
        before.roles.iter().all(|r| r.open_incidents.is_empty()),
        "not open yet at 08:00"
    );
    assert!(ic.default_incident_owner);
    assert_eq!(ic.escalation, ["ops"], "no alternate channel: the owner's");
    let failed: Vec<_> = r
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.detail.as_str())
        .collect();
    assert!(
        failed
            .iter()
            .any(|d| d.contains("'dba' (owner carol) has no alternate")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|d| d.contains("carol is the only holder of 2 critical roles")),
        "{failed:?}"
    );
    assert_eq!(verdict(&ws, "roles", at(9, 0)).0, Verdict::Breached);
}

#[test]
fn a_review_records_the_topology_and_falls_due_after_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::statuses(&[]);
    let base = policy(&hook.url("/c"), &hook.url("/o"));
    // A git work tree around the policy file, written the way git writes one.
    let commit = "3f1c0de5a1b2c3d4e5f60718293a4b5c6d7e8f90";
    std::fs::create_dir_all(dir.path().join(".git/refs/heads")).unwrap();
    std::fs::write(dir.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        dir.path().join(".git/packed-refs"),
        format!("# pack-refs\n{commit} refs/heads/main\n"),
    )
    .unwrap();
    let ws = workspace(dir.path(), &base);
    assert_eq!(git_commit(ws.path()).as_deref(), Some(commit));
    // A loose ref wins over the packed one, as in git.
    let newer = "a".repeat(40);
    std::fs::write(
        dir.path().join(".git/refs/heads/main"),
        format!("{newer}\n"),
    )
    .unwrap();
    assert_eq!(git_commit(ws.path()).as_deref(), Some(newer.as_str()));
    assert_eq!(git_commit(Path::new("/nonexistent/bulwark.toml")), None);

    // Nothing on record and an empty ledger: due at once.
    assert_eq!(verdict(&ws, "review", at(0, 0)).0, Verdict::Breached);
    refused(
        review::record(&ws, " ", None, at(1, 0)),
        "names who reviewed",
    );
    let r = review::record(
        &ws,
        "carol, dave",
        Some("tabletop of region loss".into()),
        at(1, 0),
    )
    .unwrap();
    assert_eq!(r.details.policy_commit.as_deref(), Some(newer.as_str()));
    assert!(
        r.details
            .topology
            .iter()
            .any(|l| l == "repository primary region=eu-west-1 replica_of=-")
    );
    assert_eq!(verdict(&ws, "review", at(2, 0)).0, Verdict::Met);
    assert!(review::changes(&ws, at(100, 0)).unwrap().diff.is_empty());
    refused(
        review::record(&ws, "x", None, at(0, 30)),
        "cannot come before",
    );

    // The primary moves region: a material change, dated by the first run that saw it.
    drop(ws);
    let moved = base.replace("\"eu-west-1\"", "\"eu-central-1\"");
    let ws = workspace(dir.path(), &moved);
    let ch = review::changes(&ws, at(100, 0)).unwrap();
    assert_eq!(
        ch.diff.removed,
        ["repository primary region=eu-west-1 replica_of=-"]
    );
    assert_eq!(
        ch.diff.added,
        ["repository primary region=eu-central-1 replica_of=-"]
    );
    let prov = review::provenance(&ws);
    assert_eq!(
        prov.topology_fingerprint.as_deref(),
        Some(ch.current_fingerprint.as_str())
    );
    // A run event carrying the new fingerprint (as `run` writes it), on 3 December.
    let seen = at(72, 0);
    let details = bulwark_app::events::RunDetails {
        selection: "due".into(),
        provenance: prov,
        ..Default::default()
    };
    ws.ledger()
        .append(details.event("nothing due").timed(seen, seen))
        .unwrap();
    let due = review::due(&ws, at(73, 0)).unwrap();
    assert_eq!(due[0].kind, "change");
    assert_eq!(due[0].due, seen + Duration::days(30));
    let (v, why) = verdict(&ws, "review", at(73, 0));
    assert_eq!(v, Verdict::AtRisk, "{why}");
    assert_eq!(
        verdict(&ws, "review", seen + Duration::days(30)).0,
        Verdict::Breached
    );
    // Reviewed again: the change is reviewed (though not as of before that review).
    review::record(&ws, "carol", None, at(80, 0)).unwrap();
    assert!(review::changes(&ws, at(100, 0)).unwrap().diff.is_empty());
    assert!(!review::changes(&ws, at(79, 0)).unwrap().diff.is_empty());
    assert_eq!(verdict(&ws, "review", at(81, 0)).0, Verdict::Met);
    assert_eq!(review::reviews(&ws).unwrap().len(), 2);
}

#[test]
fn a_run_opens_an_incident_when_backups_stop_and_closes_it_when_they_resume() {
    use bulwark_app::events::RunDetails;
    use bulwark_app::run::{RunRequest, Selection, run};

    let (dir, config) = site::embedded_default();
    let ws = Workspace::open(
        &config,
        OpenOptions {
            credentials: Credentials::default(),
            create: Create::Everything,
            cache: false,
        },
    )
    .unwrap();
    ws.init_missing().unwrap();
    let t0 = Utc::now();
    let req = |selection, now| RunRequest {
        selection,
        now,
        progress: &bulwark_ops::Silent,
        context: None,
    };
    let r = run(&ws, &req(Selection::All, t0)).unwrap();
    assert!(r.ok && r.incidents.is_empty(), "{r:?}");
    // The run recorded the plan it ran under.
    let last = ws
        .ledger()
        .last(&EventKind::Run, None, false)
        .unwrap()
        .unwrap();
    let prov = RunDetails::of(&last).unwrap().provenance;
    assert_eq!(
        prov.topology_fingerprint,
        Some(review::topology(&ws).fingerprint())
    );
    assert_eq!(prov.policy_commit, None, "not in a git work tree");

    // Two days later the database is gone: its backup fails and app-db is past its 24h RPO.
    let db = dir.path().join("sample/app.db");
    let kept = dir.path().join("app.db.kept");
    std::fs::rename(&db, &kept).unwrap();
    let t1 = t0 + Duration::days(2);
    let r = run(&ws, &req(Selection::Due, t1)).unwrap();
    assert!(!r.ok);
    assert_eq!(
        r.incidents,
        [
            "INC-1 opened (SEV-2, incident-commander): Backups of app-db are older than the recovery point objective"
        ],
        "{r:?}"
    );
    let i = find(&ws, "INC-1").unwrap();
    assert_eq!(
        (i.cause, i.subject.as_deref()),
        (Some(Cause::RpoBreached), Some("app-db"))
    );
    assert_eq!(i.opened, t1);
    // Still broken an hour later: the same incident, no second one.
    let r = run(
        &ws,
        &req(
            Selection::Named(vec!["app-db".into()]),
            t1 + Duration::hours(1),
        ),
    )
    .unwrap();
    assert!(r.incidents.is_empty(), "{r:?}");
    // The database is back: the next backup meets the RPO and the incident resolves itself.
    std::fs::rename(&kept, &db).unwrap();
    let t2 = t1 + Duration::hours(2);
    let r = run(&ws, &req(Selection::Named(vec!["app-db".into()]), t2)).unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.incidents,
        ["INC-1 resolved: Backups of app-db are older than the recovery point objective"]
    );
    let i = find(&ws, "INC-1").unwrap();
    assert_eq!(i.resolved, Some(t2));
    // Its post-mortem is now due; status says so.
    let st = bulwark_app::status::status(&ws, t2 + Duration::minutes(1)).unwrap();
    let pm = st
        .platform
        .aspects
        .iter()
        .find(|a| a.name == "postmortem")
        .unwrap();
    assert!(
        pm.reason.contains("INC-1: the post-mortem is due"),
        "{pm:?}"
    );
    assert_eq!(incidents(&ws).unwrap().len(), 1);

    // Role changes are evidence: the first run recorded the roles, later runs nothing while
    // they stay; a new alternate is recorded by the next run.
    let role_events = |ws: &Workspace| {
        ws.ledger()
            .events(&EventFilter::all().kind(EventKind::RoleChange))
            .unwrap()
    };
    let first = role_events(&ws);
    assert_eq!(first.len(), 1, "four runs, one record");
    let d = roles::RoleChangeDetails::of(&first[0]).unwrap();
    assert_eq!(d.roles.len(), 2);
    assert_eq!(first[0].started, t0);
    drop(ws);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "alternates = [\"bob\"]",
        "alternates = [\"bob\", \"frank\"]",
    );
    std::fs::write(&config, text).unwrap();
    let ws = Workspace::open(
        &config,
        OpenOptions {
            credentials: Credentials::default(),
            create: Create::Nothing,
            cache: false,
        },
    )
    .unwrap();
    run(
        &ws,
        &req(
            Selection::Named(vec!["docs".into()]),
            t2 + Duration::hours(1),
        ),
    )
    .unwrap();
    let all = role_events(&ws);
    assert_eq!(all.len(), 2);
    let d = roles::RoleChangeDetails::of(&all[1]).unwrap();
    assert_eq!(
        d.added,
        ["role backup-operator critical=true owner=alice alternates=bob,frank"]
    );
    assert_eq!(
        d.removed,
        ["role backup-operator critical=true owner=alice alternates=bob"]
    );
}
