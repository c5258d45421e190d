//! The stable error codes of every API answer (the `error` field of a JSON error body), each
//! with the status it is answered with. A code is written here once; handlers, services and
//! the OpenAPI document name it by its variant. Codes are a contract with clients: add new
//! ones, never rename or reuse one.

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:literal;)*) => {
        /// A stable error code and its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    AlreadyUploaded = "already_uploaded", 409;
    BadBody = "bad_body", 400;
    BodyTimeout = "body_timeout", 408;
    BucketUnreadable = "bucket_unreadable", 502;
    ChecksumMismatch = "checksum_mismatch", 460;
    Conflict = "conflict", 409;
    CsrfRefused = "csrf_refused", 403;
    ConflictingTarget = "conflicting_target", 400;
    DeviceDisabled = "device_disabled", 412;
    DownloadDisabled = "download_disabled", 403;
    EtagMismatch = "etag_mismatch", 400;
    EventNotUploaded = "event_not_uploaded", 409;
    ExpiredSignature = "expired_signature", 403;
    ExtensionNotAllowed = "extension_not_allowed", 415;
    FinalUpload = "final_upload", 403;
    Forbidden = "forbidden", 403;
    ForbiddenTarget = "forbidden_target", 400;
    Gone = "gone", 410;
    GoneFromDevice = "gone_from_device", 404;
    GrantDisabled = "grant_disabled", 403;
    HarvestFailed = "harvest_failed", 502;
    HashMismatch = "hash_mismatch", 400;
    InsufficientStorage = "insufficient_storage", 507;
    Internal = "internal", 500;
    InvalidChecksum = "invalid_checksum", 400;
    InvalidConcat = "invalid_concat", 400;
    InvalidContentType = "invalid_content_type", 400;
    InvalidCursor = "invalid_cursor", 400;
    InvalidFileId = "invalid_file_id", 400;
    InvalidFolderId = "invalid_folder_id", 400;
    InvalidForm = "invalid_form", 400;
    InvalidHasThumbnail = "invalid_has_thumbnail", 400;
    InvalidHash = "invalid_hash", 400;
    InvalidJson = "invalid_json", 400;
    InvalidKey = "invalid_key", 400;
    InvalidLength = "invalid_length", 400;
    InvalidLimit = "invalid_limit", 400;
    InvalidMediaType = "invalid_media_type", 400;
    InvalidMetadata = "invalid_metadata", 400;
    InvalidName = "invalid_name", 400;
    InvalidOffset = "invalid_offset", 400;
    InvalidOption = "invalid_option", 400;
    InvalidPartCount = "invalid_part_count", 400;
    InvalidPartList = "invalid_part_list", 400;
    InvalidParts = "invalid_parts", 400;
    InvalidPath = "invalid_path", 400;
    InvalidQuery = "invalid_query", 400;
    InvalidRequest = "invalid_request", 400;
    InvalidSignature = "invalid_signature", 403;
    InvalidSize = "invalid_size", 400;
    InvalidTime = "invalid_time", 400;
    InvalidUrl = "invalid_url", 400;
    MethodNotAllowed = "method_not_allowed", 405;
    MissingBucket = "missing_bucket", 400;
    MissingEvent = "missing_event", 400;
    MissingFile = "missing_file", 400;
    MissingFilename = "missing_filename", 400;
    MissingFolderId = "missing_folder_id", 400;
    MissingKey = "missing_key", 400;
    MissingName = "missing_name", 400;
    MissingPart = "missing_part", 400;
    MissingUlid = "missing_ulid", 400;
    MissingUrl = "missing_url", 400;
    NoPullSource = "no_pull_source", 409;
    NoSuchDevice = "no_such_device", 404;
    NoSuchEvent = "no_such_event", 404;
    NoSuchGrant = "no_such_grant", 404;
    NoSuchJob = "no_such_job", 404;
    NoSuchMedia = "no_such_media", 404;
    NoSuchObject = "no_such_object", 404;
    NoSuchSession = "no_such_session", 404;
    NoSuchUpload = "no_such_upload", 404;
    NoThumbnail = "no_thumbnail", 404;
    NoRendition = "no_rendition", 404;
    NotFound = "not_found", 404;
    NotPulled = "not_pulled", 404;
    NotReady = "not_ready", 503;
    ObjectMissing = "object_missing", 400;
    OffsetMismatch = "offset_mismatch", 409;
    OutsideGrant = "outside_grant", 403;
    PartTooSmall = "part_too_small", 400;
    PathConflict = "path_conflict", 409;
    PullFailed = "pull_failed", 502;
    QuotaExceeded = "quota_exceeded", 413;
    RangeNotSatisfiable = "range_not_satisfiable", 416;
    SessionExpired = "session_expired", 410;
    SessionFinished = "session_finished", 410;
    SessionFull = "session_full", 413;
    StaleUpdate = "stale_update", 409;
    TooLarge = "too_large", 413;
    TooManyFiles = "too_many_files", 413;
    Unauthorized = "unauthorized", 401;
    Unavailable = "unavailable", 503;
    UnknownBucket = "unknown_bucket", 400;
    UnknownContent = "unknown_content", 400;
    UnknownDevice = "unknown_device", 400;
    UnsupportedMediaType = "unsupported_media_type", 415;
    UnsupportedVersion = "unsupported_version", 412;
    UploadCompleted = "upload_completed", 409;
    UploadCompleting = "upload_completing", 409;
    UploadDisabled = "upload_disabled", 403;
    UploadExpired = "upload_expired", 410;
    UploadInProgress = "upload_in_progress", 409;
    UploadLocked = "upload_locked", 423;
    UploadMismatch = "upload_mismatch", 400;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_unique_snake_case_with_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
