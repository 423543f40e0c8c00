//! Outgoing email: SMTP through lettre (STARTTLS or implicit TLS as the URL says), or - on the embedded
//! default with no SMTP server configured - an outbox folder of `.eml` files, with a log line saying where.
//!
//! Message bodies may hold one-time codes: they are never logged, and outbox files are owner-only.

use std::path::{Path, PathBuf};

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::email::EmailAddress;

/// How mail leaves the platform.
#[derive(Clone)]
pub enum MailTransport {
    /// `smtp://host:port` (plain; add `?tls=required` for STARTTLS) or `smtps://host:port` (implicit TLS),
    /// optionally with `user:password@`. Secret: it may hold a password.
    Smtp { url: SecretString },
    /// Write each message to this folder instead of sending it (embedded default).
    Outbox { dir: PathBuf },
}

impl std::fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp { .. } => f.write_str("Smtp([redacted])"),
            Self::Outbox { dir } => f.debug_struct("Outbox").field("dir", dir).finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail: invalid sender address {0:?}")]
    Sender(String),
    #[error("mail: invalid SMTP URL ({0})")]
    Url(String),
    #[error("mail: cannot build the message: {0}")]
    Build(String),
    #[error("mail: SMTP delivery failed: {0}")]
    Smtp(String),
    #[error("mail: cannot write to the outbox {path}: {source}")]
    Outbox { path: PathBuf, source: std::io::Error },
}

/// A message to send: plain text, to one recipient.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: EmailAddress,
    pub subject: String,
    pub body: String,
}

#[derive(Clone)]
enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Sends email. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    sender: Sender,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.sender {
            Sender::Smtp(_) => "smtp".to_string(),
            Sender::Outbox(dir) => format!("outbox {}", dir.display()),
        };
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("via", &kind).finish()
    }
}

impl Mailer {
    pub fn new(from: &str, transport: &MailTransport) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|_| MailError::Sender(from.to_string()))?;
        let sender = match transport {
            MailTransport::Smtp { url } => Sender::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // lettre's error text can quote the URL: say only what kind of problem it is.
                    .map_err(|e| MailError::Url(if e.is_client() { "malformed".into() } else { "unsupported".into() }))?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            MailTransport::Outbox { dir } => Sender::Outbox(dir.clone()),
        };
        Ok(Self { from, sender })
    }

    /// Whether mail can go out now: an SMTP server that answers (a connection and `NOOP`, bounded by the
    /// transport's timeout), or an outbox folder. Says which, never the server's URL or credentials.
    pub async fn check(&self) -> Result<String, MailError> {
        match &self.sender {
            Sender::Smtp(transport) => match transport.test_connection().await {
                Ok(true) => Ok("SMTP server answering".into()),
                Ok(false) => Err(MailError::Smtp("the server did not accept a connection".into())),
                Err(e) => Err(MailError::Smtp(describe_smtp_error(&e))),
            },
            Sender::Outbox(dir) => {
                Ok(format!("writing to the local outbox {} (no SMTP server configured)", dir.display()))
            }
        }
    }

    /// Sends `email` (or writes it to the outbox).
    pub async fn send(&self, email: OutgoingEmail) -> Result<(), MailError> {
        let to: Mailbox =
            email.to.as_str().parse().map_err(|e: lettre::address::AddressError| MailError::Build(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(email.body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.sender {
            Sender::Smtp(transport) => {
                transport.send(message).await.map_err(|e| MailError::Smtp(describe_smtp_error(&e)))?;
                tracing::info!(to_domain = %email.to.domain(), "email sent over SMTP");
            }
            Sender::Outbox(dir) => {
                let path = write_outbox(dir, &message.formatted())?;
                tracing::info!(path = %path.display(), "email written to the local outbox (no SMTP server configured)");
            }
        }
        Ok(())
    }
}

fn describe_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    if e.is_transient() {
        "the server answered with a temporary error".into()
    } else if e.is_permanent() {
        "the server refused the message".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_tls() {
        "TLS handshake failed".into()
    } else {
        "connection failed".into()
    }
}

fn write_outbox(dir: &Path, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let err = |source| MailError::Outbox { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    let name = format!("{}-{}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"), uuid::Uuid::now_v7().simple());
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(err)?;
    std::io::Write::write_all(&mut file, bytes).map_err(err)?;
    Ok(path)
}

/// The sign-in code email. The code is in the body only, never the subject (subjects show up in
/// notifications and logs).
pub fn sign_in_code_email(to: &EmailAddress, code: &str, valid_minutes: u64) -> OutgoingEmail {
    OutgoingEmail {
        to: to.clone(),
        subject: "Your DeployClaw sign-in code".into(),
        body: format!(
            "Your DeployClaw sign-in code is:\n\n    {code}\n\n\
             It works once and expires in {valid_minutes} minutes.\n\n\
             If you did not try to sign in, you can ignore this email: nobody can sign in without the code,\n\
             and your authenticator app is still required after it.\n"
        ),
    }
}

/// Where and when something happened, for security notices.
#[derive(Debug, Clone)]
pub struct NoticeContext {
    pub at: chrono::DateTime<chrono::Utc>,
    pub ip: std::net::IpAddr,
    pub user_agent: Option<String>,
}

impl NoticeContext {
    fn lines(&self) -> String {
        format!(
            "    Time:       {}\n    IP address: {}\n    Browser:    {}\n",
            self.at.format("%Y-%m-%d %H:%M UTC"),
            self.ip,
            self.user_agent.as_deref().unwrap_or("unknown")
        )
    }
}

/// Sent when a sign-in completes from a device or network the user has not used before.
pub fn new_device_email(to: &EmailAddress, seen: &NoticeContext) -> OutgoingEmail {
    OutgoingEmail {
        to: to.clone(),
        subject: "New sign-in to your DeployClaw account".into(),
        body: format!(
            "Your DeployClaw account was just signed in to from a device or network we have not seen before:\n\n\
             {}\n\
             If this was you, there is nothing to do.\n\n\
             If it was not you, someone has your email and your authenticator (or a recovery code). Open\n\
             Settings > Sessions, choose \"Sign out everywhere\", and contact your account owner.\n",
            seen.lines()
        ),
    }
}

/// Sent when one of the user's recovery codes is used.
pub fn recovery_code_used_email(to: &EmailAddress, seen: &NoticeContext, remaining: usize) -> OutgoingEmail {
    OutgoingEmail {
        to: to.clone(),
        subject: "A DeployClaw recovery code was used".into(),
        body: format!(
            "One of your DeployClaw recovery codes was just used to sign in, and your authenticator was reset:\n\n\
             {}\n\
             {remaining} unused recovery code(s) remain; a new set is issued when you set up your new authenticator.\n\n\
             If this was not you, someone has your email and a recovery code. Contact your account owner or\n\
             DeployClaw support right away.\n",
            seen.lines()
        ),
    }
}

/// Sent to a client's owners and admins when an agent's model spend reaches 50, 80 or 100 % of its daily cap.
pub fn budget_alert_email(
    to: &EmailAddress,
    agent: &str,
    percent: u8,
    spent_usd: &str,
    cap_usd: &str,
) -> OutgoingEmail {
    let consequence = if percent >= 100 {
        "The gateway now refuses this agent's model calls (HTTP 402) until 00:00 UTC, or until you raise its\n\
         daily spend cap on the agent's Permissions card."
    } else {
        "Nothing is blocked yet: at 100 % the gateway refuses the agent's model calls until 00:00 UTC."
    };
    OutgoingEmail {
        to: to.clone(),
        subject: format!("Agent {agent} has used {percent}% of its daily model budget"),
        body: format!(
            "Your DeployClaw agent \"{agent}\" has spent {spent_usd} USD on model calls today (UTC), {percent} % of\n\
             its daily cap of {cap_usd} USD.\n\n{consequence}\n\n\
             If you did not expect this, open the agent's Audit view to see its recent model calls.\n"
        ),
    }
}

/// Sent to a client's owners when an operator suspends the account.
pub fn suspended_email(to: &EmailAddress, client: &str, reason: &str) -> OutgoingEmail {
    OutgoingEmail {
        to: to.clone(),
        subject: "Your DeployClaw account has been suspended".into(),
        body: format!(
            "The operators of this DeployClaw installation have suspended the account \"{client}\":\n\n    {reason}\n\n\
             Your agents have been stopped (not deleted: their state and credentials are kept) and signing in is\n\
             blocked until the suspension is lifted. Reply to your operator's support contact to resolve it.\n"
        ),
    }
}

/// Outgoing email.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The sender, e.g. `DeployClaw <no-reply@example.com>`.
    pub from: String,
    /// SMTP, or the local outbox folder when no SMTP URL is set (embedded mode only).
    pub transport: MailTransport,
}
