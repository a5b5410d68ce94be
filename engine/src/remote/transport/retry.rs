//! Transient retry with exponential backoff and jitter (§7.11). Only network
//! failures, 5xx and 429 are retried; `Retry-After` (seconds) is honoured, capped
//! by `max_retry_after`.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::time::Duration;

use super::http::{HttpRequest, HttpResponse, ResponseHead, Transport, TransportError};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retry; the fixtures use 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Extra random delay as a fraction of the backoff (0.2 = up to +20 %).
    pub jitter_fraction: f64,
    /// Upper bound on a server-requested `Retry-After` wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(150),
            max_backoff: Duration::from_millis(1500),
            jitter_fraction: 0.2,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let base = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let jitter = base.mul_f64(self.jitter_fraction * random_unit());
        base + jitter
    }
}

/// A uniform value in [0, 1) from the OS-seeded UUID generator (avoids a rand dependency).
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

fn is_retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

fn retry_after(retry_after_header: Option<&str>) -> Option<Duration> {
    retry_after_header
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends `request` and retries transient outcomes. Returns the last response (which
/// may itself be a 5xx after the final attempt) or the last transport error.
pub fn send_with_retry(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    request: &HttpRequest,
) -> Result<HttpResponse, TransportError> {
    retry_loop(policy, || transport.send(request), &|| false)
}

/// [`send_with_retry`] that makes no further attempt (and sleeps no further) once
/// `stopped` is true: the call it belongs to was interrupted or timed out.
pub fn send_with_retry_until(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    request: &HttpRequest,
    stopped: &dyn Fn() -> bool,
) -> Result<HttpResponse, TransportError> {
    retry_loop(policy, || transport.send(request), stopped)
}

/// What the retry rule needs to see of an answer.
trait Answer {
    fn status(&self) -> u16;
    fn header(&self, name: &str) -> Option<&str>;
}

impl Answer for HttpResponse {
    fn status(&self) -> u16 {
        self.status
    }
    fn header(&self, name: &str) -> Option<&str> {
        HttpResponse::header(self, name)
    }
}

impl Answer for ResponseHead {
    fn status(&self) -> u16 {
        self.status
    }
    fn header(&self, name: &str) -> Option<&str> {
        ResponseHead::header(self, name)
    }
}

/// Runs `attempt` until it answers with a status that is not retryable, or the
/// policy's attempts are used up (returning the last outcome).
fn retry_loop<T: Answer>(
    policy: &RetryPolicy,
    mut attempt_once: impl FnMut() -> Result<T, TransportError>,
    stopped: &dyn Fn() -> bool,
) -> Result<T, TransportError> {
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let outcome = attempt_once();
        let delay = match &outcome {
            Ok(answer) if is_retryable_status(answer.status()) => {
                policy.backoff(attempt, retry_after(answer.header("Retry-After")))
            }
            Ok(_) => return outcome,
            Err(_) => policy.backoff(attempt, None),
        };
        if attempt >= attempts || stopped() {
            return outcome;
        }
        // Sleep in short steps so a stopped call does not wait out a long Retry-After.
        let until = std::time::Instant::now() + delay;
        while std::time::Instant::now() < until {
            if stopped() {
                return outcome;
            }
            std::thread::sleep((until - std::time::Instant::now()).min(Duration::from_millis(50)));
        }
        attempt += 1;
    }
}

/// Empties the spool file before an attempt, so a retried response never follows
/// the partial body of a failed one.
fn reset_spool(file: &mut File) -> Result<(), TransportError> {
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| TransportError {
            message: format!("resetting the response spool file failed: {e}"),
        })
}

/// [`send_with_retry`] for a response streamed into `file` ([`Transport::send_to`]):
/// same retry rule; `file` holds exactly the body of the returned response.
pub fn send_to_with_retry(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    request: &HttpRequest,
    file: &mut File,
) -> Result<ResponseHead, TransportError> {
    send_to_with_retry_until(transport, policy, request, file, &|| false)
}

/// [`send_to_with_retry`] that stops retrying once `stopped` is true.
pub fn send_to_with_retry_until(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    request: &HttpRequest,
    file: &mut File,
    stopped: &dyn Fn() -> bool,
) -> Result<ResponseHead, TransportError> {
    retry_loop(
        policy,
        || {
            reset_spool(file)?;
            transport.send_to(request, file)
        },
        stopped,
    )
}
