//! The auth service: accounts (Argon2id), rotating refresh sessions, EdDSA access tokens,
//! profiles, XP stats and the leaderboard. `main.rs` only starts it.

pub mod handlers;
pub mod passwords;
pub mod routes;
pub mod sessions;

/// The auth service: it alone holds the private key and mints tokens.
#[derive(Clone)]
pub struct Auth(actix_web::web::Data<AuthLimits>);

/// How fast one address may sign in and sign up, and how browser sessions' cookies are set.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// `LOGIN_LIMIT_PER_IP_PER_MIN` (default 30): how fast one address can guess, whatever
    /// accounts it tries.
    pub sign_ins_per_address_per_minute: u64,
    /// `REGISTER_LIMIT_PER_IP_PER_HOUR` (default 20): a sign-up flood would otherwise keep the
    /// password-hashing cores from everyone's sign-ins.
    pub sign_ups_per_address_per_hour: u64,
    /// `COOKIE_SECURE` (default: true in production): session cookies carry `Secure`, so a
    /// browser sends them over HTTPS only. Development serves plain HTTP on 127.0.0.1.
    pub secure_cookies: bool,
}

impl AuthLimits {
    pub fn from_env() -> anyhow::Result<Self> {
        use service_kit::config::var_or;
        Ok(Self {
            sign_ins_per_address_per_minute: var_or("LOGIN_LIMIT_PER_IP_PER_MIN", 30)?,
            sign_ups_per_address_per_hour: var_or("REGISTER_LIMIT_PER_IP_PER_HOUR", 20)?,
            secure_cookies: var_or(
                "COOKIE_SECURE",
                service_kit::config::environment()? == db_core::Environment::Production,
            )?,
        })
    }
}

impl service_kit::Service for Auth {
    const NAME: &'static str = "auth";
    const DEFAULT_PORT: u16 = 8081;
    const SIGNS_TOKENS: bool = true;
    const API: service_kit::Api = API;

    async fn start(_kit: &service_kit::Kit) -> anyhow::Result<Self> {
        Ok(Auth(actix_web::web::Data::new(AuthLimits::from_env()?)))
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(self.0.clone());
    }
}

/// The app data the handlers need (for tests that start the API without [`service_kit::run`]).
pub fn data(
    limits: AuthLimits,
) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static {
    let limits = actix_web::web::Data::new(limits);
    move |cfg| {
        cfg.app_data(limits.clone());
    }
}

/// The auth service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream auth",
    description: "Accounts, sessions, profiles and the leaderboard",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
