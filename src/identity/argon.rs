//! A bounded pool for argon2id work (recovery codes): a few worker threads, each owning its argon2 memory
//! for the life of the process, fed through a short queue.
//!
//! Why: every argon2id hash with the crate's defaults fills 19 MiB. Allocated per hash on the blocking pool,
//! those blocks pile up in glibc's arenas (its adaptive mmap threshold keeps freed blocks of that size), so a
//! server that had signed up three users held 260 MB for good; and a burst of guesses started as many threads
//! as requests. Here the memory is allocated once per worker and reused, the number of workers is fixed
//! (sized to the cores), and a request that finds the queue full is told "busy" at once instead of waiting
//! or starting a thread. Output is the standard PHC string the `argon2` crate writes, so stored hashes are
//! unchanged.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How many jobs may wait per worker before new ones are refused as busy.
const QUEUE_PER_WORKER: usize = 4;

/// Why argon2 work was not done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgonError {
    /// Every worker is busy and the queue is full: the caller should answer "busy, try again".
    #[error("password hashing is busy; try again in a moment")]
    Busy,
    /// The pool is gone (the process is stopping) or a worker failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

enum Job {
    /// Hash each input with a fresh salt; answers PHC strings in the same order.
    Hash { inputs: Vec<Zeroizing<Vec<u8>>>, reply: tokio::sync::oneshot::Sender<Result<Vec<String>, ArgonError>> },
    /// The index of the first stored hash `input` matches, if any.
    FirstMatch { input: Zeroizing<Vec<u8>>, hashes: Vec<String>, reply: tokio::sync::oneshot::Sender<Option<usize>> },
}

/// The pool's handle; cheap to clone.
#[derive(Clone)]
pub struct ArgonPool {
    jobs: SyncSender<Job>,
    workers: usize,
}

impl std::fmt::Debug for ArgonPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgonPool").field("workers", &self.workers).finish()
    }
}

impl ArgonPool {
    /// A pool of `workers` threads (at least one) with the argon2 crate's default cost.
    pub fn new(workers: usize) -> Self {
        Self::with_queue(workers, workers.max(1) * QUEUE_PER_WORKER)
    }

    /// A pool sized to the machine: one worker per core, at most four.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self::new(cores.clamp(1, 4))
    }

    /// A pool whose queue holds `queue` waiting jobs (tests use a small one to reach "busy").
    pub fn with_queue(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&rx))
                .expect("an argon2 worker thread starts");
        }
        Self { jobs, workers }
    }

    /// Worker threads in the pool: the most argon2 hashes that run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Hashes each input with a fresh random salt (argon2id, default cost), as PHC strings.
    pub async fn hash_all(&self, inputs: Vec<Zeroizing<Vec<u8>>>) -> Result<Vec<String>, ArgonError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Hash { inputs, reply })?;
        answer.await.map_err(|_| ArgonError::Failed("the worker stopped".into()))?
    }

    /// Which of `hashes` (PHC strings) `input` matches, checked in order; `None` when none does. A hash that
    /// does not parse, or uses another algorithm, never matches.
    pub async fn first_match(
        &self,
        input: Zeroizing<Vec<u8>>,
        hashes: Vec<String>,
    ) -> Result<Option<usize>, ArgonError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::FirstMatch { input, hashes, reply })?;
        answer.await.map_err(|_| ArgonError::Failed("the worker stopped".into()))
    }

    fn submit(&self, job: Job) -> Result<(), ArgonError> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ArgonError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(ArgonError::Failed("no worker is running".into())),
        }
    }
}

/// One worker: takes jobs until the pool's handles are gone, reusing one block of argon2 memory.
fn work(rx: &Mutex<Receiver<Job>>) {
    let mut memory = vec![Block::default(); Params::default().block_count()];
    loop {
        // The lock is held only while waiting for the next job, not while working on it.
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        match job {
            Job::Hash { inputs, reply } => {
                let hashed = inputs.iter().map(|input| hash_one(input, &mut memory)).collect();
                let _ = reply.send(hashed);
            }
            Job::FirstMatch { input, hashes, reply } => {
                let found = hashes.iter().position(|phc| matches(&input, phc, &mut memory));
                let _ = reply.send(found);
            }
        }
    }
}

fn hash_one(input: &[u8], memory: &mut [Block]) -> Result<String, ArgonError> {
    let failed = |e: &dyn std::fmt::Display| ArgonError::Failed(e.to_string());
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(input, salt_raw, &mut out[..], &mut *memory)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|e: argon2::password_hash::Error| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out[..]).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

fn matches(input: &[u8], phc: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    // Stored hashes use the default cost; a larger one would need memory this worker does not hold.
    if params.block_count() > memory.len() {
        return false;
    }
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let computed = Argon2::new(Algorithm::Argon2id, version, params).hash_password_into_with_memory(
        input,
        salt_raw,
        &mut out[..],
        &mut *memory,
    );
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_that_the_argon2_crate_verifies_and_back() {
        let pool = ArgonPool::new(1);
        let hashes = pool.hash_all(vec![Zeroizing::new(b"ABCDE23456".to_vec())]).await.unwrap();
        assert!(hashes[0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hashes[0]);
        let parsed = PasswordHash::new(&hashes[0]).unwrap();
        assert!(Argon2::default().verify_password(b"ABCDE23456", &parsed).is_ok(), "the crate verifies ours");
        // And ours verifies the crate's (what earlier versions stored).
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"QRSTU98765", &salt).unwrap();
        let stored = vec!["not a hash".to_string(), hashes[0].clone(), theirs.to_string()];
        assert_eq!(pool.first_match(Zeroizing::new(b"QRSTU98765".to_vec()), stored.clone()).await.unwrap(), Some(2));
        assert_eq!(pool.first_match(Zeroizing::new(b"ABCDE23456".to_vec()), stored.clone()).await.unwrap(), Some(1));
        assert_eq!(pool.first_match(Zeroizing::new(b"ABCDE23457".to_vec()), stored).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once_instead_of_waiting_or_starting_threads() {
        // One worker and room for one waiting job. Jobs are handed in without waiting for answers: a job takes
        // the worker at least one whole argon2 hash (19 MiB filled twice), a hand-in a channel operation, so
        // the queue is full long before the worker can drain it.
        let pool = ArgonPool::with_queue(1, 1);
        let mut answers = Vec::new();
        let mut refused = 0;
        for i in 0..1000 {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let input = Zeroizing::new(format!("CODE{i:06}").into_bytes());
            match pool.submit(Job::Hash { inputs: vec![input], reply }) {
                Ok(()) => answers.push(answer),
                Err(ArgonError::Busy) => {
                    refused += 1;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(refused, 1, "a job beyond the worker and its queue is refused as busy");
        assert!(answers.len() <= 2, "at most one running and one waiting: {}", answers.len());
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap().len(), 1, "accepted jobs are done");
        }
    }
}
