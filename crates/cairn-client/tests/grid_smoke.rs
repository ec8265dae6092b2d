//! The test grid itself: distinct servers, each reachable.
use cairn_test_support::grid::TestGrid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_grid_servers_are_distinct_and_reachable() {
    let mut tg = TestGrid::start(4).await;
    let grid = tg.client();
    grid.probe_all().await;
    let ids: std::collections::BTreeSet<_> = grid
        .servers()
        .iter()
        .map(|s| s.info.server_id.clone())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(grid
        .servers()
        .iter()
        .all(|s| s.health().connected == Some(true)));
    tg.stop(1).await;
    let down = grid
        .servers()
        .iter()
        .find(|s| s.info.server_id == tg.announcements[1].server_id)
        .unwrap()
        .clone();
    assert!(down.probe().await.is_err());
    assert_eq!(down.health().connected, Some(false));
    assert!(down.health().score < 0 && down.health().last_problem.is_some());
    tg.restart(1).await;
    down.probe().await.unwrap();
    assert_eq!(down.health().connected, Some(true));
}
