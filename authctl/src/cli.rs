//! The command line, as clap sees it. Every command has `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

const EXIT_CODES: &str =
    "Exit codes: 0 success, 1 error, 2 bad usage, 3 not found, 4 backend unavailable.";

/// Parses the command line. Bad usage prints why and exits with 2, `--help`
/// exits with 0; both are clap's.
pub fn parse() -> Cli {
    let matches = with_exit_codes(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Every command's `--help` ends with the exit codes a script can rely on.
fn with_exit_codes(command: clap::Command) -> clap::Command {
    command
        .after_help(EXIT_CODES)
        .mut_subcommands(with_exit_codes)
}

/// Manage the bearer-token service: API keys, sessions, signing keys, and a local server.
///
/// By default everything works on an embedded store in --data-dir; with
/// --table (or TABLE_NAME) it works on that DynamoDB table through the
/// standard AWS environment (AWS_ENDPOINT_URL for an emulator).
#[derive(Debug, Parser)]
#[command(name = "authctl", version)]
pub struct Cli {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where keys and sessions live.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Directory of the embedded store and its signing key (ignored with --table).
    #[arg(
        long,
        global = true,
        default_value = ".data",
        value_name = "DIR",
        help_heading = "Backend"
    )]
    pub data_dir: PathBuf,
    /// A DynamoDB table to work on instead of the embedded store.
    #[arg(
        long,
        global = true,
        env = "TABLE_NAME",
        value_name = "NAME",
        help_heading = "Backend"
    )]
    pub table: Option<String>,
    /// The Secrets Manager signing secret (serve and rotate-signing-key on DynamoDB).
    #[arg(
        long,
        global = true,
        env = "SIGNING_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Backend"
    )]
    pub signing_secret_arn: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve /auth/*, /oauth2/* and the OAuth2 metadata on one port.
    Serve(ServeArgs),
    /// Create, list, show, revoke and rotate API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List and revoke the sessions of a key.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Show the audit trail, newest first: who changed what, when. Of one key,
    /// of one owner (`--owner`), or everything (signing-key rotations and
    /// portal links included).
    Events(EventsArgs),
    /// Create the DynamoDB table and the signing secret (emulators, dev accounts).
    Setup(SetupArgs),
    /// Rotate the signing key: the previous key keeps verifying live tokens.
    ///
    /// Only the current and the previous key verify, so a rotation drops the
    /// key before them. It is refused (exit 1, saying when it may run) sooner
    /// than TOKEN_TTL_SECONDS + SIGNING_KEY_CACHE_SECONDS + CLOCK_LEEWAY_SECONDS
    /// after the previous one, while tokens signed by the key it would drop may
    /// still be live. The
    /// settings are read from the environment as `serve` and the Lambdas read
    /// them.
    RotateSigningKey(RotateSigningKeyArgs),
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The key id; without it, every event (of `--owner` when given).
    pub key_id: Option<String>,
    /// Only the events of this owner's keys and portal links.
    #[arg(long, conflicts_with = "key_id")]
    pub owner: Option<String>,
    /// Events at most (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// A request's headers and body must arrive within this time of its first byte (1s to 5m).
    #[arg(long, default_value = "10s", value_name = "DURATION",
          value_parser = serve_limit::<1, 300>)]
    pub request_timeout: Duration,
    /// A connection idle this long between requests is closed (1s to 1h).
    #[arg(long, default_value = "60s", value_name = "DURATION",
          value_parser = serve_limit::<1, 3600>)]
    pub idle_timeout: Duration,
    /// Open connections at most; past it new ones are answered 503 and closed (1 to 100000).
    #[arg(long, default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Another Host the server answers to besides its own address and localhost,
    /// as NAME (any port) or NAME:PORT; repeatable. Needed behind a proxy or on 0.0.0.0.
    #[arg(long, value_name = "HOST")]
    pub public_host: Vec<crate::serve::host::AllowedHost>,
    /// Do not serve GET /metrics (request counters and latencies for Prometheus).
    #[arg(long)]
    pub no_metrics: bool,
}

/// A duration flag of `serve`, from `MIN` to `MAX` seconds.
fn serve_limit<const MIN: u64, const MAX: u64>(s: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 10s, 1m)"))?;
    if value < Duration::from_secs(MIN) || value > Duration::from_secs(MAX) {
        let (min, max) = (Duration::from_secs(MIN), Duration::from_secs(MAX));
        return Err(format!(
            "must be from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

#[derive(Debug, Args)]
pub struct RotateSigningKeyArgs {
    /// Rotate even if the previous rotation was too recent, for a leaked key:
    /// tokens signed by the key that drops out stop verifying at once, and
    /// their clients must log in again.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// Space-separated scopes, e.g. "read write documents:read".
        #[arg(long)]
        scopes: String,
        /// The customer the key belongs to: 1-128 of A-Z a-z 0-9 . _ : @ -
        #[arg(long)]
        owner: Option<String>,
        /// A JSON object (at most 4 KiB) that verify hands back with every token of the key.
        #[arg(long)]
        meta: Option<String>,
        /// Lifetime, e.g. 90d, 12h, 1y (at most 100 years); none means it never expires.
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION")]
        expires_in: Option<Duration>,
        /// Print {"api_key", "key_id", "name", "scopes"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every key (never a secret).
    List {
        /// Only the keys of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one key (never its secret).
    Show {
        /// The key id (16 hex characters).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: its tokens stop verifying at once.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Change a key's name, scopes, metadata or expiry; narrower scopes take effect on the next verify.
    Update {
        /// The key id.
        id: String,
        /// A new label.
        #[arg(long)]
        name: Option<String>,
        /// New space-separated scopes.
        #[arg(long)]
        scopes: Option<String>,
        /// A new metadata object (JSON, at most 4 KiB), replacing the old one whole.
        #[arg(long, conflicts_with = "clear_meta")]
        meta: Option<String>,
        /// Remove the metadata.
        #[arg(long)]
        clear_meta: bool,
        /// A new lifetime from now, e.g. 90d (at most 100 years).
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION", conflicts_with = "no_expiry")]
        expires_in: Option<Duration>,
        /// Make the key never expire.
        #[arg(long)]
        no_expiry: bool,
        /// Print the key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret for a key; the old one keeps working for the grace period.
    Rotate {
        /// The key id.
        id: String,
        /// How long the old secret keeps working, e.g. 24h (at most 30 days); 0 cuts it at once.
        #[arg(long, value_parser = parse_grace, default_value = "24h", value_name = "DURATION")]
        grace: Duration,
        /// Print {"api_key", "key_id", "name", "scopes"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the sessions of a key.
    List {
        /// The key id.
        key_id: String,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one session: its tokens stop verifying at once.
    Revoke {
        /// The key id.
        key_id: String,
        /// The session id.
        session_id: String,
    },
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Name of the signing secret to create (default: <table>-signing-key).
    #[arg(long, value_name = "NAME")]
    pub secret_name: Option<String>,
}

/// The longest `keys create --expires-in`: 100 years (of 365.25 days, as humantime counts).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 31_557_600);
/// The longest `keys rotate --grace`: an old secret that works longer defeats the rotation.
const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    parse_duration(s, MAX_LIFETIME, "100 years")
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    parse_duration(s, MAX_GRACE, "30 days")
}

/// A humantime duration of at most `max` (`in_words`), so that no time
/// computed from it can overflow or leave the calendar.
fn parse_duration(s: &str, max: Duration, in_words: &str) -> Result<Duration, String> {
    let duration = if s == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90d, 24h, 30m)"))?
    };
    if duration > max {
        return Err(format!("at most {in_words}"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_up_to_their_bound_parse_and_longer_ones_are_refused() {
        assert_eq!(parse_lifetime("100y"), Ok(MAX_LIFETIME));
        assert_eq!(parse_lifetime("0"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("30d"), Ok(MAX_GRACE));
        for (parse, too_long) in [
            (parse_lifetime as fn(&str) -> _, "100y 1s"),
            (parse_lifetime, "20000years"),
            (parse_grace, "30d 1s"),
            (parse_grace, "584542046090years"),
        ] {
            assert!(
                parse(too_long).unwrap_err().starts_with("at most"),
                "{too_long}"
            );
        }
        assert!(parse_grace("99999999999999999999999s").is_err());
    }
}
