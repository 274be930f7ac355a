//! Tests of `--wait`: which progress lines print and when waiting ends.

use yunshu_proto::api::v1 as pb;

use super::*;

fn instance(phase: Phase, foundation: &str, summary: &str) -> Resource {
    Resource::Instance(pb::Instance {
        metadata: Some(pb::ObjectMeta {
            name: "departments/health/instances/web-1".into(),
            ..Default::default()
        }),
        spec: None,
        status: Some(pb::InstanceStatus {
            phase: phase.into(),
            foundation: foundation.into(),
            placement_summary: summary.into(),
            addresses: if phase == Phase::Ready {
                vec!["10.2.0.14".into()]
            } else {
                vec![]
            },
            message: if phase == Phase::Failed {
                "no valid host".into()
            } else {
                String::new()
            },
            ..Default::default()
        }),
    })
}

#[test]
fn transition_lines_carry_what_matters_in_each_phase() {
    let t = Duration::from_millis(2100);
    assert_eq!(
        transition_line(t, &instance(Phase::Pending, "", "")),
        "   2.1s  Pending"
    );
    assert_eq!(
        transition_line(
            t,
            &instance(
                Phase::Scheduled,
                "foundations/kunpeng-1",
                "highest score 0.82"
            )
        ),
        "   2.1s  Scheduled      kunpeng-1: highest score 0.82"
    );
    assert_eq!(
        transition_line(
            t,
            &instance(
                Phase::Scheduled,
                "foundations/kunpeng-1",
                "kunpeng-1 fits best"
            )
        ),
        "   2.1s  Scheduled      kunpeng-1 fits best"
    );
    assert_eq!(
        transition_line(
            t,
            &instance(Phase::Unschedulable, "", "no foundation has xinchuang")
        ),
        "   2.1s  Unschedulable  no foundation has xinchuang"
    );
    assert_eq!(
        transition_line(
            Duration::from_secs(41),
            &instance(Phase::Ready, "foundations/kunpeng-1", "s")
        ),
        "  41.0s  Ready          10.2.0.14"
    );
    assert_eq!(
        transition_line(t, &instance(Phase::Failed, "foundations/kunpeng-1", "s")),
        "   2.1s  Failed         no valid host"
    );
}

#[test]
fn progress_prints_only_changes() {
    let mut out = Vec::new();
    let mut p = Progress::new(&mut out);
    for phase in [
        Phase::Pending,
        Phase::Pending,
        Phase::Scheduled,
        Phase::Scheduled,
        Phase::Ready,
    ] {
        p.observe(&instance(phase, "", "")).expect("prints");
    }
    let text = String::from_utf8(out).expect("utf-8");
    let phases: Vec<_> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(phases, ["Pending", "Scheduled", "Ready"]);
}

#[test]
fn failed_is_an_error_and_ready_is_done() {
    let ready = settled(Until::Settled, &instance(Phase::Ready, "", ""), "web-1").expect("ok");
    assert!(ready.is_some());
    assert!(
        settled(
            Until::Settled,
            &instance(Phase::Unschedulable, "", ""),
            "web-1"
        )
        .expect("ok")
        .is_none()
    );
    let failed =
        settled(Until::Settled, &instance(Phase::Failed, "", ""), "web-1").expect_err("failed");
    assert_eq!(failed.exit(), crate::error::Exit::Failed);
    assert_eq!(failed.to_string(), "instance web-1 failed: no valid host");
}

/// A Ready instance at `generation` whose Ready condition observed
/// `observed`.
fn changed(generation: u64, observed: u64, status: ConditionStatus) -> Resource {
    let Resource::Instance(mut i) = instance(Phase::Ready, "foundations/kunpeng-1", "") else {
        unreachable!("an instance");
    };
    if let Some(m) = i.metadata.as_mut() {
        m.generation = generation;
    }
    if let Some(s) = i.status.as_mut() {
        s.conditions = vec![pb::Condition {
            r#type: "Ready".into(),
            status: status.into(),
            reason: "Provisioned".into(),
            message: "SHUTOFF on foundation kunpeng-1".into(),
            observed_generation: observed,
            last_transition_time: None,
        }];
    }
    Resource::Instance(i)
}

#[test]
fn applied_waits_for_the_ready_condition_to_observe_the_generation() {
    let until = Until::Applied { generation: 3 };
    let before = changed(3, 2, ConditionStatus::True);
    assert!(settled(until, &before, "web-1").expect("ok").is_none());
    let not_yet_true = changed(3, 3, ConditionStatus::False);
    assert!(
        settled(until, &not_yet_true, "web-1")
            .expect("ok")
            .is_none()
    );
    let after = changed(3, 3, ConditionStatus::True);
    assert!(settled(until, &after, "web-1").expect("ok").is_some());
    // A later change applied counts too.
    let later = changed(3, 4, ConditionStatus::True);
    assert!(settled(until, &later, "web-1").expect("ok").is_some());
    // No condition at all: not applied, whatever the phase.
    let bare = instance(Phase::Ready, "", "");
    assert!(settled(until, &bare, "web-1").expect("ok").is_none());
    let failed = settled(until, &instance(Phase::Failed, "", ""), "web-1").expect_err("failed");
    assert_eq!(failed.exit(), crate::error::Exit::Failed);
    // Settled ignores generations: Ready is Ready.
    assert!(
        settled(Until::Settled, &before, "web-1")
            .expect("ok")
            .is_some()
    );
}

#[test]
fn applying_lines_say_which_generation_is_pending_then_the_outcome() {
    let t = Duration::from_millis(1500);
    assert_eq!(
        applying_line(t, &changed(3, 2, ConditionStatus::True), Some(3)),
        "   1.5s  Ready          applying generation 3, observed 2"
    );
    assert_eq!(
        applying_line(t, &changed(3, 3, ConditionStatus::True), Some(3)),
        "   1.5s  Ready          SHUTOFF on foundation kunpeng-1"
    );
    // What it waits for, when it says.
    let mut waiting = changed(3, 2, ConditionStatus::True);
    if let Resource::Instance(i) = &mut waiting
        && let Some(s) = i.status.as_mut()
    {
        s.message = "waiting for room on foundation kunpeng-1".into();
    }
    assert_eq!(
        applying_line(t, &waiting, Some(3)),
        "   1.5s  Ready          applying generation 3, observed 2: waiting for room on foundation kunpeng-1"
    );
    // Without a target, Ready shows the addresses as before.
    assert_eq!(
        transition_line(t, &changed(3, 3, ConditionStatus::True)),
        "   1.5s  Ready          10.2.0.14"
    );
    assert_eq!(
        describe(Until::Applied { generation: 3 }, Duration::from_secs(60)),
        "until Ready at generation 3 or Failed (timeout 1m)"
    );
}

#[test]
fn progress_while_applying_prints_when_the_generation_is_observed() {
    let mut out = Vec::new();
    let mut p = Progress::new(&mut out).applying(3);
    for r in [
        changed(3, 2, ConditionStatus::True),
        changed(3, 2, ConditionStatus::True),
        changed(3, 3, ConditionStatus::True),
    ] {
        p.observe(&r).expect("prints");
    }
    assert_eq!(p.last_phase(), "Ready");
    let text = String::from_utf8(out).expect("utf-8");
    let details: Vec<_> = text
        .lines()
        .map(|l| l.get(24..).unwrap_or_default())
        .collect();
    assert_eq!(
        details,
        [
            "applying generation 3, observed 2",
            "SHUTOFF on foundation kunpeng-1"
        ],
        "{text}"
    );
    let mut out = Vec::new();
    let mut p = Progress::new(&mut out).applying(3);
    p.observe(&changed(3, 2, ConditionStatus::True))
        .expect("prints");
    assert_eq!(p.last_phase(), "Ready, generation 3 not yet applied");
}

#[test]
fn parents() {
    assert_eq!(
        parent_of("departments/health/instances/web-1"),
        "departments/health"
    );
}

#[test]
fn what_a_resource_waits_for_is_shown_and_kept_for_the_timeout() {
    let mut waiting = instance(Phase::Scheduled, "foundations/kunpeng-1", "fits best");
    if let Resource::Instance(i) = &mut waiting
        && let Some(s) = i.status.as_mut()
    {
        s.message = "waiting: foundation kunpeng-1 has no adapter credentials".into();
    }
    assert_eq!(
        transition_line(Duration::from_secs(3), &waiting),
        "   3.0s  Scheduled      kunpeng-1: fits best; waiting: foundation kunpeng-1 has no adapter credentials"
    );
    let mut out = Vec::new();
    let mut p = Progress::new(&mut out);
    let plain = instance(Phase::Scheduled, "foundations/kunpeng-1", "fits best");
    for r in [&plain, &waiting, &waiting] {
        p.observe(r).expect("prints");
    }
    assert_eq!(
        p.last_phase(),
        "Scheduled (waiting: foundation kunpeng-1 has no adapter credentials)"
    );
    assert!(!p.last_is(Phase::Unschedulable));
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(
        text.lines().count(),
        2,
        "a new message is a new line: {text}"
    );
}
