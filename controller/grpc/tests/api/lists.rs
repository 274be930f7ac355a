//! Lists page through a department's resources; watches resume from a
//! revision and end with OUT_OF_RANGE after compaction.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_and_watches_resume() {
    let s = start().await;
    department(&*s.store, "health", 1000).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    let mut revisions = Vec::new();
    for i in 0..7 {
        let r = c
            .create_instance(as_(
                ALICE,
                create(
                    &format!("vm-{i}"),
                    &format!("p{i}"),
                    instance(1, 1024, "kylin-v10"),
                ),
            ))
            .await
            .expect("create");
        revisions.push(
            r.into_inner()
                .instance
                .and_then(|i| i.metadata)
                .expect("meta")
                .revision,
        );
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_instances(as_(
                ALICE,
                pb::ListInstancesRequest {
                    parent: "departments/health".into(),
                    page_size: 3,
                    page_token: token.clone(),
                    filter: None,
                },
            ))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        names.extend(
            page.instances
                .into_iter()
                .filter_map(|i| i.metadata)
                .map(|m| m.name),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((pages, names.len()), (3, 7));
    let err = c
        .list_instances(as_(
            ALICE,
            pb::ListInstancesRequest {
                parent: "departments/health".into(),
                page_size: 3,
                page_token: "zz".into(),
                filter: None,
            },
        ))
        .await
        .expect_err("bad token");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Resume from the fourth create: exactly the last four, in order.
    let mut watch = c
        .watch_instances(as_(
            ALICE,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: revisions[3],
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    for want in &revisions[3..] {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok");
        assert_eq!(ev.revision, *want);
    }

    s.store.compact(revisions[6]).await.expect("compact");
    let mut watch = c
        .watch_instances(as_(
            ALICE,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: revisions[0],
            },
        ))
        .await
        .expect("watch opens")
        .into_inner();
    let err = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("answer")
        .expect("item")
        .expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
}

/// Filters select by phase, label and foundation (`foundations/{name}`, as
/// documented and as yunshuctl sends it); a filter value that means nothing
/// is refused, not ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_and_bad_filters_are_refused() {
    use yunshu_core::{
        keys,
        meta::Kind,
        model::{InstanceSpec, Phase},
    };

    let s = start().await;
    department(&*s.store, "health", 1000).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    for (name, foundation) in [("a", "kunpeng-1"), ("b", "phase-1"), ("c", "")] {
        c.create_instance(as_(
            ALICE,
            create(name, &format!("r-{name}"), instance(1, 1024, "kylin-v10")),
        ))
        .await
        .expect("create");
        if foundation.is_empty() {
            continue;
        }
        // Placed, as the placement loop would.
        let key = keys::object(Kind::Instance, Some("health"), name);
        common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
            o.status.phase = Phase::Scheduled;
            o.status.placement.foundation = Some(foundation.into());
        })
        .await;
    }
    let list = |filter: pb::ListFilter| pb::ListInstancesRequest {
        parent: "departments/health".into(),
        filter: Some(filter),
        ..Default::default()
    };
    let names = |r: pb::ListInstancesResponse| -> Vec<String> {
        r.instances
            .into_iter()
            .filter_map(|i| i.metadata.map(|m| m.name))
            .collect()
    };

    let on_kunpeng = c
        .list_instances(as_(
            ALICE,
            list(pb::ListFilter {
                foundation: "foundations/kunpeng-1".into(),
                ..Default::default()
            }),
        ))
        .await
        .expect("list by foundation");
    assert_eq!(
        names(on_kunpeng.into_inner()),
        ["departments/health/instances/a"]
    );
    let pending = c
        .list_instances(as_(
            ALICE,
            list(pb::ListFilter {
                phases: vec![pb::Phase::Pending as i32],
                ..Default::default()
            }),
        ))
        .await
        .expect("list by phase");
    assert_eq!(
        names(pending.into_inner()),
        ["departments/health/instances/c"]
    );

    for (filter, field) in [
        (
            pb::ListFilter {
                phases: vec![99],
                ..Default::default()
            },
            "filter.phases",
        ),
        (
            pb::ListFilter {
                foundation: "kunpeng-1".into(),
                ..Default::default()
            },
            "filter.foundation",
        ),
    ] {
        let err = c
            .list_instances(as_(ALICE, list(filter)))
            .await
            .expect_err(field);
        common::assert_names_field(err, field);
    }

    // PHASE_UNSPECIFIED alone matches nothing, as documented.
    let none = c
        .list_instances(as_(
            ALICE,
            list(pb::ListFilter {
                phases: vec![pb::Phase::Unspecified as i32],
                ..Default::default()
            }),
        ))
        .await
        .expect("unspecified phase");
    assert!(names(none.into_inner()).is_empty());

    // A page token is honoured only with the filter that produced it.
    let first = c
        .list_instances(as_(
            ALICE,
            pb::ListInstancesRequest {
                page_size: 1,
                ..list(pb::ListFilter::default())
            },
        ))
        .await
        .expect("first page")
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let err = c
        .list_instances(as_(
            ALICE,
            pb::ListInstancesRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..list(pb::ListFilter {
                    phases: vec![pb::Phase::Pending as i32],
                    ..Default::default()
                })
            },
        ))
        .await
        .expect_err("another filter");
    common::assert_names_field(err, "page_token");
    let next = |page_token: String| {
        as_(
            ALICE,
            pb::ListInstancesRequest {
                page_size: 1,
                page_token,
                ..list(pb::ListFilter::default())
            },
        )
    };
    let second = c
        .list_instances(next(first.next_page_token.clone()))
        .await
        .expect("the same filter goes on")
        .into_inner();
    // No store key in a token; one an earlier build made (the whole key
    // in hex) still reads the same next page.
    let (name, digest) = first.next_page_token.split_once('.').expect("token");
    let last = first.instances[0]
        .metadata
        .as_ref()
        .expect("metadata")
        .name
        .rsplit('/')
        .next()
        .expect("name")
        .to_owned();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(name, hex(&last));
    let earlier = format!(
        "{}.{digest}",
        hex(&format!("/yunshu/objects/instances/health/{last}"))
    );
    let again = c
        .list_instances(next(earlier))
        .await
        .expect("an earlier build's token")
        .into_inner();
    assert_eq!(again.instances, second.instances);
}
