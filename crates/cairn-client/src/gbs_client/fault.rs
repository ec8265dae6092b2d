//! `Fault`: whose fault a failed request is, for scoring servers.

/// Whose fault a failure is (for scoring servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The server could not be reached or did not answer in time: maybe transient.
    Network,
    /// The server is not the one the NURL names (SPKI pin mismatch): never trust it.
    Identity,
    /// The server answered wrongly: 5xx, a broken TLS handshake, a response that violates the
    /// protocol or is too large.
    Server,
    /// The server answered correctly and said no (401, 404, 405, 409, …): about this request
    /// and the server's state, not the server's health.
    Refused,
    /// Our request was bad (400, 406, 413, 415, 416, or refused before sending).
    Client,
}
