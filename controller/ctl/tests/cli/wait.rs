//! `--wait` and `watch`: progress until a resource settles, exit codes
//! when it fails or the wait runs out, and changes streamed from a revision.

use super::*;

#[tokio::test]
async fn wait_shows_each_phase_until_ready() {
    let s = start().await;
    let store = s.store.clone();
    let scheduler = async move {
        instance_stored(&*store, "web-1").await;
        // Long enough for the CLI to read the instance while still Pending.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let steps: [(Phase, &str, &[&str]); 3] = [
            (
                Phase::Scheduled,
                "kunpeng-1 scored highest of 1 (xinchuang)",
                &[],
            ),
            (
                Phase::Provisioning,
                "kunpeng-1 scored highest of 1 (xinchuang)",
                &[],
            ),
            (
                Phase::Ready,
                "kunpeng-1 scored highest of 1 (xinchuang)",
                &["10.2.0.14"],
            ),
        ];
        for (phase, summary, addresses) in steps {
            set_instance_status(&*store, "web-1", |o| {
                o.status.phase = phase;
                o.status.placement.foundation = Some("kunpeng-1".into());
                o.status.placement.summary = summary.into();
                o.status.addresses = addresses.iter().map(|a| (*a).to_owned()).collect();
            })
            .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let args = create_instance("web-1", &["--wait", "--timeout", "30s"]);
    let (run, ()) = tokio::join!(ctl(&s.operator, &args), scheduler);
    let out = run.ok();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(
        lines[0],
        "instance web-1 created; waiting until Ready or Failed (timeout 30s)"
    );
    let phases: Vec<_> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        phases,
        ["Pending", "Scheduled", "Provisioning", "Ready"],
        "{out}"
    );
    assert!(
        lines[2].ends_with("Scheduled      kunpeng-1 scored highest of 1 (xinchuang)"),
        "{out}"
    );
    assert!(lines[4].ends_with("Ready          10.2.0.14"), "{out}");
    // Elapsed time leads every progress line.
    assert!(
        lines[1..].iter().all(|l| l
            .trim_start()
            .split(' ')
            .next()
            .is_some_and(|t| t.ends_with('s'))),
        "{out}"
    );
}

#[tokio::test]
async fn wait_with_json_keeps_progress_off_stdout() {
    let s = start().await;
    let store = s.store.clone();
    let provisioner = async move {
        instance_stored(&*store, "web-1").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        set_instance_status(&*store, "web-1", |o| {
            o.status.phase = Phase::Ready;
            o.status.addresses = vec!["10.2.0.14".into()];
        })
        .await;
    };
    let args = create_instance("web-1", &["--wait", "-o", "json"]);
    let (run, ()) = tokio::join!(ctl(&s.operator, &args), provisioner);
    assert!(run.err.contains("Ready"), "{}", run.err);
    let v = run.json();
    assert_eq!(v["status"]["phase"], "Ready");
    assert_eq!(v["status"]["addresses"][0], "10.2.0.14");
}

#[tokio::test]
async fn wait_exits_8_when_the_cloud_fails_the_instance() {
    let s = start().await;
    let store = s.store.clone();
    let cloud = async move {
        instance_stored(&*store, "web-1").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        set_instance_status(&*store, "web-1", |o| {
            o.status.phase = Phase::Failed;
            o.status.message = "No valid host was found".into();
        })
        .await;
    };
    let args = create_instance("web-1", &["--wait"]);
    let (run, ()) = tokio::join!(ctl(&s.operator, &args), cloud);
    assert_eq!(run.exit, Exit::Failed, "{run:?}");
    assert_eq!(run.exit.code(), 8);
    assert!(
        run.out
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("Failed         No valid host was found")),
        "{}",
        run.out
    );
    assert_eq!(
        run.err,
        "error: instance web-1 failed: No valid host was found\n"
    );
}

#[tokio::test]
async fn wait_gives_up_after_the_timeout_with_exit_7() {
    let s = start().await;
    let run = ctl(
        &s.operator,
        &create_instance("web-1", &["--wait", "--timeout", "1s"]),
    )
    .await;
    assert_eq!(run.exit, Exit::Unavailable, "{run:?}");
    assert_eq!(run.exit.code(), 7);
    assert!(run.out.contains("Pending"), "{}", run.out);
    assert_eq!(
        run.err,
        "error: timed out after 1s waiting for instance web-1 (still Pending)\n"
    );
    // The instance was created all the same.
    ctl(&s.operator, &["get", "instance", "web-1"]).await.ok();
}

#[tokio::test]
async fn delete_wait_returns_once_the_resource_is_gone() {
    let s = start().await;
    ctl(
        &s.operator,
        &["create", "bucket", "scans", "--quota-bytes", "1Gi"],
    )
    .await
    .ok();
    let out = ctl(
        &s.operator,
        &["delete", "bucket", "scans", "--wait", "--timeout", "10s"],
    )
    .await
    .ok();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(
        lines[0],
        "bucket scans deletion requested; waiting until it is gone (timeout 10s)"
    );
    assert!(
        lines.last().is_some_and(|l| l.ends_with("Deleted")),
        "{out}"
    );
    let missing = ctl(&s.operator, &["delete", "bucket", "scans"]).await;
    assert_eq!(missing.exit, Exit::NotFound, "{missing:?}");
}

#[tokio::test]
async fn watch_streams_changes_from_a_revision() {
    let s = start().await;
    ctl(&s.operator, &create_instance("web-1", &[])).await.ok();
    ctl(&s.operator, &create_instance("web-2", &[])).await.ok();
    ctl(&s.operator, &["delete", "instance", "web-1"])
        .await
        .ok();

    let out = ctl(
        &s.operator,
        &["watch", "instances", "--since", "1", "--count", "3"],
    )
    .await
    .ok();
    let lines: Vec<_> = out.lines().collect();
    assert!(lines[0].starts_with("REVISION   EVENT     NAME"), "{out}");
    let events: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut f = l.split_whitespace().skip(1);
            (f.next().unwrap_or_default(), f.next().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        events,
        [
            ("Created", "web-1"),
            ("Created", "web-2"),
            ("Deleted", "web-1")
        ],
        "{out}"
    );

    let json = ctl(
        &s.operator,
        &[
            "watch",
            "instances",
            "--since",
            "1",
            "--count",
            "2",
            "-o",
            "json",
        ],
    )
    .await
    .ok();
    let revisions: Vec<i64> = json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            assert_eq!(v["type"], "Created");
            v["revision"].as_i64().expect("revision")
        })
        .collect();
    assert_eq!(revisions.len(), 2);
    assert!(revisions[0] < revisions[1]);

    // History compacted away: exit 6 (not a usage error), and the hint
    // says to list again rather than to resume from the same place.
    let now = s.store.current_revision().await.expect("revision");
    s.store.compact(now).await.expect("compact");
    let compacted = ctl(&s.operator, &["watch", "instances", "--since", "1"]).await;
    assert_eq!(compacted.exit, Exit::Conflict, "{compacted:?}");
    assert!(
        compacted.err.contains("then read the current state")
            && compacted.err.contains("without --since")
            && !compacted.err.contains("resume with"),
        "{compacted:?}"
    );
}
