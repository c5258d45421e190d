//! The session family's request bodies as `/openapi.json` describes them. Schema only: the
//! handlers read their fields one by one ([`super::form::Fields`] for register, finish and
//! the imports, so one body may be JSON, a URL-encoded or a multipart form; `store_file` in
//! `upload.rs` for the upload form), and these types only name those fields and their
//! kinds. In JSON each option keeps its kind (API.md §3); form values are text. Values in
//! the query string fill in the fields a body leaves out.

#![allow(dead_code)] // never built: see the module documentation

use utoipa::ToSchema;

use crate::http::openapi::Binary;

/// A `folder_id`: 1-64 of `A-Z a-z 0-9 _ -`, or a JSON number taken as its decimal string.
struct FolderId;

impl utoipa::PartialSchema for FolderId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9_-]{1,64}$"));
        let number = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        OneOfBuilder::new().item(name).item(number).into()
    }
}

impl ToSchema for FolderId {}

/// `POST /api/upload/id`: the folder and the session's limits (read by `register`).
#[derive(ToSchema)]
pub struct SessionRegisterRequest {
    /// The target folder, created on first use. A JSON integer is taken as its decimal
    /// string. Missing: 400 `missing_folder_id`; malformed: 400 `invalid_folder_id`.
    #[schema(value_type = FolderId, inline, example = "holiday")]
    folder_id: String,
    /// Largest file, in bytes; 0 or absent: no limit. A decimal string also works.
    #[schema(required = false, minimum = 0)]
    max_filesize: i64,
    /// Number of files; 0 or absent: no limit. A decimal string also works.
    #[schema(required = false, minimum = 0)]
    max_files: i64,
    /// Total bytes of the session's files; 0 or absent: no limit. A decimal string also works.
    #[schema(required = false, minimum = 0)]
    max_size: i64,
    /// The extensions the session accepts: a comma list, any case, with or without dots.
    #[schema(required = false, example = "jpg,png")]
    file_extensions: String,
    /// The first stored file finishes the session. Booleans also take `0`/`1`, and those
    /// or `true`/`false` as text in any case (else 400 `invalid_option`).
    #[schema(required = false, default = true)]
    autofinish: bool,
    /// Upload answers leave out `file_id`.
    #[schema(required = false, default = false)]
    hide_response: bool,
    /// Stored with the session.
    #[schema(required = false, default = false)]
    no_transcode: bool,
}

/// `DELETE /api/upload/id`: the session to finish (read by `finish_by_body`).
#[derive(ToSchema)]
pub struct SessionFinishRequest {
    /// The session's `ulid`, here or in the query string (missing in both: 400 `missing_ulid`).
    #[schema(required = false, example = "01JQ8Z5X3N4W6Y7A8B9C0D1E2F")]
    ulid: String,
}

/// An upload: a multipart form whose fields may come in any order (read by `store_file`).
#[derive(ToSchema)]
pub struct SessionUploadForm {
    /// One file (a second one: 400 `invalid_form`). Its name's extension is checked
    /// against the session's `file_extensions`.
    #[schema(value_type = Binary)]
    file: Vec<u8>,
    /// The file's title; defaults to the file name.
    #[schema(required = false, example = "Beach")]
    title: String,
    /// Another folder for this file; wins over the `folder_id` of the query string.
    #[schema(required = false, value_type = FolderId, inline, example = "trip")]
    folder_id: String,
}

/// `POST /api/upload/remote`: what to fetch, and where to put it (read by `remote`).
#[derive(ToSchema)]
pub struct RemoteImportRequest {
    /// An http or https URL (missing: 400 `missing_url`; not a URL: 400 `invalid_url`).
    #[schema(example = "https://example.org/photo.jpg")]
    url: String,
    /// The target folder, created on first use (missing: 400 `missing_folder_id`).
    #[schema(value_type = FolderId, inline, example = "web")]
    folder_id: String,
    /// The file's title.
    #[schema(required = false)]
    title: String,
}

/// `POST /api/upload/blob`: the object to register, and where to put it (read by `blob`).
#[derive(ToSchema)]
pub struct BlobImportRequest {
    /// `local` (`FERRY_IMPORT_DIR`) or a bucket `FERRY_IMPORT_BUCKETS` lists (missing: 400
    /// `missing_bucket`).
    #[schema(example = "local")]
    bucket: String,
    /// The object's key: no `..`, `//` or leading `/` (missing: 400 `missing_key`).
    #[schema(example = "beach.jpg")]
    key: String,
    /// The target folder, created on first use (missing: 400 `missing_folder_id`).
    #[schema(value_type = FolderId, inline, example = "imported")]
    folder_id: String,
}
