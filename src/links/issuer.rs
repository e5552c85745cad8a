//! The issuing pipeline: every route that mints a link (`POST /v1/links`,
//! `GET /v1/face-auth/start`, `POST /v1/users/{user_id}/links`) goes through
//! [`Issuer::issue`], in this order:
//!
//! 1. the per-user mint limit: a caller already at it is refused before any `sid` lookup
//!    (store or ARGOS) (a read when the `sid` must be looked up, nothing when it is the
//!    verified token's claim);
//! 2. the `sid` (`sid.sources`);
//! 3. the record, with the user's erasure index, in one store step that also counts the mint
//!    against the limit (one Redis round trip; a request that fails before it, or is refused
//!    by it, leaves no record, and only a refusal by the limit itself is counted);
//! 4. the metric (`links_minted`, and `link_opens{redirected}` for `start`) and the log line.

use secrecy::SecretString;

use super::{LinkError, LinkService, MintedLink, NewLink};
use crate::idempotency::{Claim, IdempotencyError};
use crate::limits::{LimitError, RateLimiter, RateStatus};
use crate::sid::{SidError, SidResolver};

/// Who a link is minted for: resolved server-side (a verified token or a service call's path),
/// never from the client's body.
#[derive(Debug, Clone)]
pub struct Requester {
    /// Owner; sent as `authUserId`.
    pub user_id: String,
    /// The verified token's `sid` claim (`auth.sid_claim`); `None` for service calls.
    pub sid_claim: Option<String>,
    /// `authCf1`..`authCf3`.
    pub cf: [Option<String>; 3],
}

/// How to mint.
#[derive(Debug, Clone, Default)]
pub struct IssueOptions {
    /// Only the confirm page's `POST` consumes the link.
    pub confirm_step: bool,
    /// Opaque reference from the session layer.
    pub reference: Option<String>,
    /// Apply the first open in the same write and build the FaceAuth URL
    /// (`face-auth/start`).
    pub open_now: bool,
    /// Who asked, for the log line (a service's subject); `None` for users.
    pub service: Option<String>,
}

/// A minted link.
#[derive(Debug)]
pub struct Issued {
    /// The link as stored.
    pub link: MintedLink,
    /// Where the user stands against the mint limit (`None` when it is off).
    pub rate: Option<RateStatus>,
    /// With [`IssueOptions::open_now`]: the FaceAuth URL to redirect to (a secret).
    pub url: Option<SecretString>,
}

/// Why nothing was minted.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Over the mint limit, or the limit's store failed.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// No source knows the user's approved submission (`422 no_submission`).
    #[error("no approved submission")]
    NoSubmission,
    /// A `sid` source could not be asked.
    #[error(transparent)]
    Sid(#[from] SidError),
    /// The `Idempotency-Key` may no longer be held.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// Too long a FaceAuth URL, or the store failed.
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// The issuing pipeline over the link service, the rate limits and the `sid` sources.
#[derive(Clone, Copy)]
pub struct Issuer<'a> {
    links: &'a LinkService,
    limiter: &'a RateLimiter,
    sid: &'a SidResolver,
}

impl<'a> Issuer<'a> {
    /// A pipeline over these parts.
    pub fn new(links: &'a LinkService, limiter: &'a RateLimiter, sid: &'a SidResolver) -> Self {
        Issuer {
            links,
            limiter,
            sid,
        }
    }

    /// Mints a link for `requester` (see the module). `claim`, when the request carries an
    /// `Idempotency-Key`, is checked to be still held after each slow step and before the
    /// write.
    ///
    /// Errors: [`IssueError`]; nothing was issued (a refused request wrote only its count).
    pub async fn issue(
        &self,
        requester: Requester,
        options: IssueOptions,
        claim: Option<&Claim>,
    ) -> Result<Issued, IssueError> {
        let held = || claim.map_or(Ok(()), Claim::ensure_held);
        let limit = self.limiter.mint_window(&requester.user_id);
        let sid = match self.sid.immediate(requester.sid_claim.as_deref()) {
            Some(sid) => sid,
            None => {
                // A caller already at its limit costs no lookup; the mint itself is counted
                // with the write below, so a failed lookup leaves no count behind.
                self.limiter.refuse_if_spent(&requester.user_id).await?;
                held()?;
                self.sid
                    .resolve(&requester.user_id, requester.sid_claim.as_deref())
                    .await?
                    .ok_or(IssueError::NoSubmission)?
            }
        };
        held()?;
        let link = NewLink {
            user_id: requester.user_id,
            sid,
            cf: requester.cf,
            confirm_step: options.confirm_step,
            reference: options.reference,
        };
        let guarded = self
            .links
            .create(&link, options.open_now, limit.as_ref())
            .await?;
        let ((minted, url), rate) = RateLimiter::judge(limit.as_ref(), guarded)?;
        let expiry = minted.record.expiry.as_str();
        let m = &crate::metrics::METRICS;
        m.links_minted.with_label_values(&[expiry]).inc();
        if options.open_now {
            crate::metrics::OpenOutcome::Redirected.count();
            tracing::info!("link minted and opened (start)");
        } else if let Some(service) = &options.service {
            tracing::info!(service = service.as_str(), "link minted for a user");
        } else {
            tracing::info!(expiry, confirm_step = options.confirm_step, "link minted");
        }
        Ok(Issued {
            link: minted,
            rate,
            url,
        })
    }
}
