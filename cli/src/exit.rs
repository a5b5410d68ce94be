//! Exit codes (sysexits.h values): 75 means "retry later, unchanged"; every other
//! non-zero code means "fix something first". The table is printed by `--help`
//! (`args::EXIT_CODES`) and in the README.
use oversqlite_engine::{ErrorKind, SyncError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Usage,
    DataErr,
    NoInput,
    Software,
    IoErr,
    TempFail,
    Protocol,
    NoPerm,
    Config,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Usage => 64,
            Exit::DataErr => 65,
            Exit::NoInput => 66,
            Exit::Software => 70,
            Exit::IoErr => 74,
            Exit::TempFail => 75,
            Exit::Protocol => 76,
            Exit::NoPerm => 77,
            Exit::Config => 78,
        }
    }

    pub fn retry_later(self) -> bool {
        self == Exit::TempFail
    }
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// The exit code of an engine failure.
pub fn classify(e: &SyncError) -> Exit {
    use ErrorKind as K;
    match e.kind {
        K::NetworkError | K::SyncInProgress | K::InTransaction | K::Timeout | K::Interrupted => {
            Exit::TempFail
        }
        K::HttpError => match e.http_status {
            Some(s) if s >= 500 || s == 429 || s == 408 => Exit::TempFail,
            Some(401) | Some(403) => Exit::NoPerm,
            _ => Exit::Config,
        },
        K::DatabaseError => match e.sqlite_code.map(|c| c & 0xff) {
            Some(SQLITE_BUSY) | Some(SQLITE_LOCKED) => Exit::TempFail,
            _ => Exit::IoErr,
        },
        K::AuthenticationFailed | K::TokenUnavailable | K::TokenUserMismatch => Exit::NoPerm,
        K::NotConfigured
        | K::NotOpen
        | K::InvalidConfig
        | K::UnsupportedServer
        | K::AttachRequired => Exit::Config,
        K::InvalidArgument => Exit::Usage,
        K::ProtocolError => Exit::Protocol,
        K::Internal => Exit::Software,
        K::AttachedToOtherUser
        | K::SourceSequenceMismatch
        | K::RebuildRequired
        | K::SourceRecoveryRequired
        | K::SourceReplacementDiverged
        | K::SourceReplacementInvalid
        | K::InvalidSourceRecoveryReason
        | K::InvalidConflictResolution
        | K::PushConflictRetryExhausted
        | K::InitializationLeaseInvalid
        | K::PendingLocalChanges
        | K::InvalidState
        | K::StateConflict
        | K::ForeignKeyViolation
        | K::PushCommitRefused
        | K::PushRejected
        | K::SchemaMismatch => Exit::DataErr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> SyncError {
        SyncError {
            http_status: Some(status),
            ..SyncError::new(ErrorKind::HttpError, "x")
        }
    }

    #[test]
    fn server_faults_are_retry_later_and_refusals_are_not() {
        assert_eq!(classify(&http(503)).code(), 75);
        assert_eq!(classify(&http(429)).code(), 75);
        assert_eq!(classify(&http(400)).code(), 78);
        assert_eq!(classify(&http(403)).code(), 77);
        assert_eq!(
            classify(&SyncError::new(ErrorKind::NetworkError, "x")).code(),
            75
        );
        assert_eq!(
            classify(&SyncError::new(ErrorKind::AuthenticationFailed, "x")).code(),
            77
        );
    }

    #[test]
    fn busy_and_locked_databases_are_retry_later() {
        let busy = SyncError {
            sqlite_code: Some(5 | (1 << 8)),
            ..SyncError::new(ErrorKind::DatabaseError, "x")
        };
        assert_eq!(classify(&busy), Exit::TempFail);
        let corrupt = SyncError {
            sqlite_code: Some(26),
            ..SyncError::new(ErrorKind::DatabaseError, "x")
        };
        assert_eq!(classify(&corrupt), Exit::IoErr);
    }
}
