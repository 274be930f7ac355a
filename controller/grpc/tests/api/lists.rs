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
