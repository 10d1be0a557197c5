//! The page in headless Chromium, through nginx, against three instance processes sharing
//! one Redis. The specs in `tests/browser/` drive the browsers; these tests set up the
//! processes, run a spec and report its output.

use crate::browser_runner::run_spec;
use crate::topology::Topology;

#[tokio::test]
async fn browser_players_pinned_to_different_instances_play_to_a_win() {
    let topo = Topology::start(3).await;
    run_spec("two_players.mjs", &topo).await;
}

#[tokio::test]
async fn browser_chat_markup_is_shown_as_text_and_never_runs() {
    let topo = Topology::start(3).await;
    run_spec("chat_is_text.mjs", &topo).await;
}

#[tokio::test]
async fn browser_page_resumes_on_another_instance_after_kill_9() {
    let topo = Topology::start(3).await;
    run_spec("failover.mjs", &topo).await;
}

#[tokio::test]
async fn browser_quick_match_resign_leave_and_join_from_the_lobby() {
    let topo = Topology::start(3).await;
    run_spec("lobby_flow.mjs", &topo).await;
}
