//! The page in headless Chromium, through nginx, against three instance processes sharing
//! one Redis. The specs in `tests/browser/` drive the browsers; these tests set up the
//! processes, run a spec and report its output.

use crate::support::browser::{check_tools, run_spec};
use crate::support::topology::Topology;

#[tokio::test]
async fn browser_players_pinned_to_different_instances_play_to_a_win() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("two_players.mjs", &topo).await;
}

#[tokio::test]
async fn browser_chat_markup_is_shown_as_text_and_never_runs() {
    check_tools();
    // A small chat budget, so the spec can also run into it.
    let topo = Topology::start_with(3, |c| {
        c.chat_rate = 0.1;
        c.chat_burst = 3;
    })
    .await;
    run_spec("chat_is_text.mjs", &topo).await;
}

#[tokio::test]
async fn browser_page_resumes_on_another_instance_after_kill_9() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("failover.mjs", &topo).await;
}

#[tokio::test]
async fn browser_page_retries_a_hello_met_by_unavailable_without_the_long_wait() {
    check_tools();
    let topo = Topology::start(1).await;
    run_spec("hello_retry.mjs", &topo).await;
}

#[tokio::test]
async fn browser_quick_match_resign_leave_and_join_from_the_lobby() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("lobby_flow.mjs", &topo).await;
}

#[tokio::test]
async fn browser_queues_again_when_a_quick_match_is_aborted() {
    // The abort waits for MATCH_CONFIRM_MS: keep it short. The departed player's ticket must
    // still be fresh when the other asks, however slow the machine (the suite's 1.5 s lease
    // was once too short on a loaded CI machine): a lease of 6 s.
    check_tools();
    let topo = Topology::start_with(3, |c| {
        c.match_confirm = std::time::Duration::from_millis(2000);
        c.lease_ttl = std::time::Duration::from_secs(6);
    })
    .await;
    run_spec("quick_match_abort.mjs", &topo).await;
}

#[tokio::test]
async fn browser_feedback_stays_in_place_and_long_chat_lines_are_refused_visibly() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("feedback.mjs", &topo).await;
}

#[tokio::test]
async fn browser_phone_has_a_compact_header_and_the_chat_folded_under_the_board() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("mobile.mjs", &topo).await;
}

#[tokio::test]
async fn browser_your_turn_cue_is_off_by_default_and_fires_only_in_the_background() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("turn_cue.mjs", &topo).await;
}

#[tokio::test]
async fn browser_names_are_asked_once_applied_when_typed_and_renames_reach_every_instance() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("names.mjs", &topo).await;
}

#[tokio::test]
async fn browser_score_and_moves_are_shown_and_a_finished_game_replays_from_its_link() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("score_replay.mjs", &topo).await;
}

#[tokio::test]
async fn browser_absent_opponent_shows_a_countdown_and_rematch_waits_for_them() {
    check_tools();
    // A short grace period, so the forfeit happens within the spec.
    let topo = Topology::start_with(3, |c| {
        c.forfeit_grace = std::time::Duration::from_secs(8);
    })
    .await;
    run_spec("absent.mjs", &topo).await;
}

#[tokio::test]
async fn browser_every_view_passes_axe_core_at_desktop_and_phone_sizes() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("a11y.mjs", &topo).await;
}

#[tokio::test]
async fn browser_a_game_can_be_played_by_keyboard_alone_and_is_read_out() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("keyboard.mjs", &topo).await;
}

#[tokio::test]
async fn browser_board_holds_still_through_names_notices_offline_and_forfeit() {
    check_tools();
    // A short grace period, so the forfeit happens within the spec.
    let topo = Topology::start_with(3, |c| {
        c.forfeit_grace = std::time::Duration::from_secs(8);
    })
    .await;
    run_spec("steady.mjs", &topo).await;
}

#[tokio::test]
async fn browser_each_role_reads_its_own_texts_and_typed_names_follow_one_rule() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("roles.mjs", &topo).await;
}

#[tokio::test]
async fn browser_a_game_against_the_computer_is_played_out_and_it_opens_the_rematch() {
    check_tools();
    // Thinking a little longer than by default, so that the cue is there to be seen.
    let topo = Topology::start_with(3, |c| {
        c.computer_delay = std::time::Duration::from_millis(1200);
    })
    .await;
    run_spec("computer.mjs", &topo).await;
}

#[tokio::test]
async fn browser_quick_match_offers_the_computer_after_the_wait_and_the_player_chooses() {
    check_tools();
    let topo = Topology::start_with(3, |c| {
        c.quick_match_computer = std::time::Duration::from_millis(1500);
    })
    .await;
    run_spec("computer_offer.mjs", &topo).await;
}

#[tokio::test]
async fn browser_profiles_rated_games_the_leaderboard_history_replay_and_recovery() {
    check_tools();
    let topo = Topology::start(3).await;
    run_spec("profiles.mjs", &topo).await;
}
