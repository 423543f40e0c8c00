//! Mail against a real SMTP server process (Python's aiosmtpd, started here), and the local outbox.

use std::net::TcpStream;
use std::path::PathBuf;

use deployclaw::email::EmailAddress;
use deployclaw::identity::codes::{SignInCodes, DEFAULT_TTL};
use deployclaw::mail::{sign_in_code_email, MailTransport, Mailer, OutgoingEmail};
use secrecy::SecretString;

use crate::support::{eventually, test_keyring, TestDb, Which};

/// Python with aiosmtpd installed; scripts/test (scripts/lib.sh `ensure_smtp_server`) sets it.
pub const SMTP_PYTHON_ENV: &str = "DEPLOYCLAW_TEST_SMTP_PYTHON";

pub(crate) struct SmtpServer {
    child: tokio::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub(crate) async fn start() -> Self {
        let python = std::env::var(SMTP_PYTHON_ENV).unwrap_or_else(|_| {
            panic!("{SMTP_PYTHON_ENV} must name a Python with aiosmtpd (run ./scripts/test, which installs one)")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd");
        let mut server = Self { child, port, maildir };
        eventually("the SMTP server listens", async || {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("aiosmtpd exited with {status}");
            }
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => false,
                Err(e) => panic!("connecting to the SMTP server: {e}"),
            }
        })
        .await;
        server
    }

    pub(crate) fn url(&self) -> MailTransport {
        MailTransport::Smtp { url: SecretString::from(format!("smtp://127.0.0.1:{}", self.port)) }
    }

    /// Messages the server has stored, once there are at least `count` of them.
    pub(crate) async fn messages(&self, count: usize) -> Vec<String> {
        let dir: PathBuf = self.maildir.path().join("mail/new");
        let mut found: Vec<String> = Vec::new();
        eventually(&format!("{count} messages at the SMTP server"), async || {
            found = std::fs::read_dir(&dir)
                .map(|entries| entries.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
                .unwrap_or_default();
            found.len() >= count
        })
        .await;
        found.sort();
        found
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn code_in(message: &str) -> String {
    let re = regex::Regex::new(r"(?m)^\s+(\d{6})\s*$").unwrap();
    re.captures(message).expect("a code line in the body")[1].to_string()
}

#[tokio::test]
async fn a_sign_in_code_travels_through_a_real_smtp_server_and_verifies() {
    let smtp = SmtpServer::start().await;
    let t = TestDb::fresh(Which::Sqlite).await;
    let mailer = Mailer::new("DeployClaw <no-reply@deployclaw.test>", &smtp.url()).unwrap();
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = EmailAddress::parse("ada@example.com").unwrap();
    let now = chrono::Utc::now();
    let code = codes.issue(&ada, now).await.unwrap();
    mailer.send(sign_in_code_email(&ada, code.expose(), 10)).await.unwrap();
    drop(code);

    let messages = smtp.messages(1).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(message.contains("Subject: Your DeployClaw sign-in code"), "{message}");
    let received = code_in(message);
    assert!(!message.lines().find(|l| l.starts_with("Subject:")).unwrap().contains(&received), "never in the subject");
    codes.verify(&ada, &received, now).await.expect("the code read from the SMTP server signs in");
    smtp.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_clear_error_without_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // nothing listens
    let transport = MailTransport::Smtp { url: SecretString::from(format!("smtp://user:Pa55w0rdX@127.0.0.1:{port}")) };
    let mailer = Mailer::new("no-reply@deployclaw.test", &transport).unwrap();
    let err = mailer
        .send(OutgoingEmail {
            to: EmailAddress::parse("a@example.com").unwrap(),
            subject: "s".into(),
            body: "b".into(),
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("SMTP delivery failed"), "{err}");
    assert!(!err.contains("Pa55w0rdX") && !format!("{transport:?}").contains("Pa55w0rdX"));
}

#[tokio::test]
async fn without_smtp_mail_lands_in_an_owner_only_outbox() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mailer =
        Mailer::new("DeployClaw <no-reply@localhost>", &MailTransport::Outbox { dir: outbox.clone() }).unwrap();
    let ada = EmailAddress::parse("ada@example.com").unwrap();
    mailer.send(sign_in_code_email(&ada, "314159", 10)).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    assert_eq!(std::fs::metadata(&outbox).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(code_in(&std::fs::read_to_string(&files[0]).unwrap()), "314159");
}

#[test]
fn a_bad_sender_or_url_is_refused_up_front() {
    let outbox = MailTransport::Outbox { dir: "/tmp/x".into() };
    assert!(Mailer::new("not an address", &outbox).is_err());
    let bad = MailTransport::Smtp { url: SecretString::from("ftp://host".to_string()) };
    assert!(Mailer::new("a@b.example", &bad).is_err());
}
