pub mod get_leaderboard;
pub mod get_me;
pub mod get_stats;
pub mod update_me;
