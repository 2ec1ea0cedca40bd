//! The whole route table of the auth service: each handler declares its method, path and
//! document once, beside its code.

use service_kit::ApiConfig;
use utoipa_actix_web::scope;

use crate::handlers::account::{
    change_password::change_password, delete_account::delete_account,
    logout_everywhere::logout_everywhere,
};
use crate::handlers::auth::{login::login, logout::logout, refresh::refresh, register::register};
use crate::handlers::users::{
    get_leaderboard::get_leaderboard, get_me::get_me, get_stats::get_stats, update_me::update_me,
};

pub fn configure(cfg: &mut ApiConfig) {
    cfg.service(
        scope("/api/v1")
            .service(register)
            .service(login)
            .service(refresh)
            .service(logout)
            .service(get_me)
            .service(update_me)
            .service(get_stats)
            .service(get_leaderboard)
            .service(change_password)
            .service(logout_everywhere)
            .service(delete_account),
    );
}
