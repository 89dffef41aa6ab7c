//! One error type for everything a user can hit. Each error carries the sentence that says what
//! failed and on which object, plus a hint that says what to do next, and the process exit code.
//! Keeping the hint beside the message (instead of in `main`) means every command reports the same
//! failure the same way.

use std::fmt;

/// Exit code for "done, and the answer is complete": for `--check`, everything is known to be in
/// order. Also what a person who answered "no" at the confirmation gets (see
/// [`ErrorKind::Declined`]).
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code for "the run finished, but its answer is not in order or not complete": `--check`
/// failed or could not be decided (unknown is not a pass), a tag did not resolve, a digest moved,
/// a read was refused (a partial `status`), rows were refused (`pin`, `unpin`).
pub(crate) const EXIT_NOT_OK: u8 = 1;
/// Exit code for errors: bad input or flags (clap's usage errors are 2 as well), API or registry
/// failure, no terminal to ask on and no `--yes`. Nothing was changed.
pub(crate) const EXIT_ERROR: u8 = 2;
/// Exit code for Ctrl-C at the confirmation: 128 + SIGINT, what a shell reports for a process
/// the interrupt ended, so `$?` reads the same whether the plugin caught it or not.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// How a run that returned (no `Error`) ends, worst last so `max` combines two. Errors carry
/// their own code through [`ErrorKind`]; this is the answer of a run that completed. Modelled
/// on uv's `ExitStatus`: commands return `Result<ExitStatus>`, never a bare number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum ExitStatus {
    /// Done, and the answer is complete and in order (0).
    #[default]
    Success,
    /// Done, but something is not in order or not known (1; see [`EXIT_NOT_OK`]).
    NotOk,
    /// Done across several platforms, but at least one could not be read at all (2).
    Failed,
}

impl ExitStatus {
    /// `NotOk` when `not_in_order`, else `Success`.
    pub(crate) fn not_ok_if(not_in_order: bool) -> Self {
        if not_in_order {
            ExitStatus::NotOk
        } else {
            ExitStatus::Success
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            ExitStatus::Success => EXIT_OK,
            ExitStatus::NotOk => EXIT_NOT_OK,
            ExitStatus::Failed => EXIT_ERROR,
        }
    }
}

/// What kind of failure an error is. Callers branch on the kind, never on the message; the exit
/// code derives from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum ErrorKind {
    /// Bad input, a local failure, or anything not listed below.
    #[default]
    Failed,
    /// The run worked but found something not in order (exit 1).
    NotOk,
    /// The API server rejected the credentials (401).
    Unauthorized,
    /// The API server (or an access review) refused the request (403).
    Forbidden,
    /// The object or namespace does not exist (404).
    NotFound,
    /// Another writer changed the object (409).
    Conflict,
    /// The API server answered with another error status (413, 422, 5xx, ...).
    ApiStatus,
    /// The API server could not be reached.
    Unreachable,
    /// The API server accepted the connection but did not answer in time.
    Timeout,
    /// The person at the terminal answered "no" (or Ctrl-D) at the confirmation; nothing was
    /// written. Exit 0, as `kubectl delete --interactive` ends when told no: the run did what
    /// its user decided, and 1 is a finding about the cluster, which a refusal is not. A script
    /// never gets here: without a terminal the question is not asked and `--yes` is required
    /// (exit 2 otherwise).
    Declined,
    /// Ctrl-C at the confirmation; nothing was written (exit 130).
    Interrupted,
}

impl ErrorKind {
    /// The process exit code: 0 for a declined confirmation, 1 for a finding, 130 for Ctrl-C at
    /// the confirmation, 2 for every error.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Declined => EXIT_OK,
            ErrorKind::NotOk => EXIT_NOT_OK,
            ErrorKind::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_ERROR,
        }
    }

    /// Whether the process ends in an error: `main` prints the message as `error: ...` then. A
    /// person's "no" or Ctrl-C at the confirmation is not one: its message is printed as it is.
    pub(crate) fn is_error(self) -> bool {
        !matches!(self, ErrorKind::Declined | ErrorKind::Interrupted)
    }
}

#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) kind: ErrorKind,
    /// What the API server answered about, for an API status: `deployments.apps in namespace
    /// x` (set once by `kube::client::api_error`). Reports that list what they could not read
    /// name it from here, never by taking the message apart.
    pub(crate) object: Option<String>,
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: None,
            kind: ErrorKind::Failed,
            object: None,
        }
    }

    /// The same error, about `object` (see [`Error::object`]).
    pub(crate) fn about(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// The same error, of another kind.
    pub(crate) fn kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The exit code this error ends the process with.
    pub(crate) fn code(&self) -> u8 {
        self.kind.exit_code()
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A failure that is a finding rather than a crash (exit 1).
    pub(crate) fn not_ok(message: impl Into<String>) -> Self {
        Error::new(message).kind(ErrorKind::NotOk)
    }

    /// The person declined the confirmation; `message` says what was not written (exit 0).
    pub(crate) fn declined(message: impl Into<String>) -> Self {
        Error::new(message).kind(ErrorKind::Declined)
    }

    /// Ctrl-C at the confirmation; `message` says what was not written (exit 130).
    pub(crate) fn interrupted(message: impl Into<String>) -> Self {
        Error::new(message).kind(ErrorKind::Interrupted)
    }

    /// Prefix the message with what was being done, keeping hint and code.
    pub(crate) fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// An error and its sources in one line, without repeats. reqwest and kube put the useful part
/// ("connection refused", "operation timed out", a certificate problem) in the source chain;
/// the top-level text alone ("client error (SendRequest)") says nothing.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(format!("JSON error: {e}"))
    }
}
