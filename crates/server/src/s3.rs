//! S3's REST API on the server's listener, over the home's S3 folder ([`Buckets`]), so the
//! workshop's `aws s3 cp` puts training data where a training job's `s3://` channel reads it. A
//! request signed for the service `s3` (its SigV4 credential scope) comes here whatever its path;
//! buckets are addressed by path (`/<bucket>/<key>`), as the AWS CLI and SDKs do for an
//! `--endpoint-url` that is an IP address. Answers and errors are S3's XML; the access key id is
//! a sagebrush token, as for SageMaker's API.
//!
//! Answered: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! ListObjects(V2), PutObject, CopyObject, GetObject (with a range), HeadObject, DeleteObject,
//! DeleteObjects, and multipart uploads (create, upload part, complete, abort). A body may come
//! in `aws-chunked` encoding; its Content-MD5, SHA-256 and CRC32 checksums are checked.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::ServiceError;
use crate::service::{BucketError, Buckets, ListQuery, Scratch, Service};

/// S3's largest single PUT.
const MAX_BODY: u64 = 5 * 1024 * 1024 * 1024;
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// What S3 leaves unescaped in a key it lists with `encoding-type=url`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Whether a request is for S3: signed for the service `s3`.
pub(crate) fn addressed(headers: &HeaderMap) -> bool {
    crate::auth::sigv4_credential(headers).is_some_and(|credential| credential.service == Some("s3"))
}

/// The outermost layer of the API: S3's requests are answered here, everything else goes on.
pub(crate) async fn divert(
    State((service, body_timeout)): State<(Service, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    if !addressed(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let request_id = random_id();
    let mut response = answer(&service, &parts, body, body_timeout).await;
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    response
}

async fn answer(service: &Service, parts: &Parts, body: Body, body_timeout: Duration) -> Response {
    let operation = match Operation::of(parts) {
        Ok(operation) => operation,
        Err(e) => return e.response(&parts.method),
    };
    let caller = match service.access().caller(&parts.headers) {
        Ok(caller) => caller,
        Err(refusal) => return S3Error::refused(&refusal).response(&parts.method),
    };
    let (reads, name) = (operation.reads(), operation.name());
    let needed = if reads { store::Role::Viewer } else { store::Role::Operator };
    let response = if caller.role < needed {
        let message =
            format!("token {} is a {}; this needs the {} role", caller.name, caller.role.as_str(), needed.as_str());
        S3Error::new(StatusCode::FORBIDDEN, "AccessDenied", message).response(&parts.method)
    } else {
        match service.buckets() {
            Some(buckets) => {
                run(operation, buckets, parts, body, body_timeout).await.unwrap_or_else(|e| e.response(&parts.method))
            }
            None => S3Error::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "this server keeps its artifacts on S3, where s3:// URIs are S3's own objects: \
                 use S3 itself (aws s3 without --endpoint-url)",
            )
            .response(&parts.method),
        }
    };
    if !reads {
        let action = format!("{} {} S3.{name}", parts.method, parts.uri.path());
        service.record(&caller, &action, response.status()).await;
    }
    response
}

/// A request, by S3's rules for its method, path and query.
#[derive(Debug)]
enum Operation {
    ListBuckets,
    CreateBucket(String),
    HeadBucket(String),
    DeleteBucket(String),
    GetBucketLocation(String),
    ListObjects { bucket: String, v2: bool, query: ListParams },
    DeleteObjects(String),
    PutObject(String, String),
    CopyObject { bucket: String, key: String, from: (String, String) },
    GetObject(String, String),
    HeadObject(String, String),
    DeleteObject(String, String),
    CreateMultipartUpload(String, String),
    UploadPart { bucket: String, key: String, id: String, number: u32 },
    UploadPartCopy { bucket: String, key: String, id: String, number: u32, from: (String, String) },
    CompleteMultipartUpload { bucket: String, key: String, id: String },
    AbortMultipartUpload { bucket: String, key: String, id: String },
}

#[derive(Debug, Default)]
struct ListParams {
    prefix: String,
    delimiter: Option<String>,
    max_keys: Option<String>,
    continuation_token: Option<String>,
    start_after: Option<String>,
    marker: Option<String>,
    encoding_type: Option<String>,
}

/// The query parameters the operations read (and botocore's `x-id`, which names the operation).
const READ: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "marker",
    "encoding-type",
    "fetch-owner",
    "uploads",
    "uploadId",
    "partNumber",
    "location",
    "delete",
    "x-id",
];

impl Operation {
    fn of(parts: &Parts) -> Result<Operation, S3Error> {
        let path = percent_decode_str(parts.uri.path())
            .decode_utf8()
            .map_err(|_| S3Error::invalid("InvalidURI", "the path is not UTF-8 once decoded"))?;
        let path = path.strip_prefix('/').unwrap_or(&path);
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        let query: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| S3Error::invalid("InvalidArgument", format!("the query is not one S3 takes: {e}")))?;
        if let Some((unknown, _)) = query.iter().find(|(name, _)| !READ.contains(&name.as_str())) {
            return Err(S3Error::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                format!(
                    "sagebrush's S3 does not answer ?{}: it keeps objects, without versions, ACLs, policies or tags",
                    names::excerpt(unknown, 40)
                ),
            ));
        }
        let has = |name: &str| query.iter().any(|(n, _)| n == name);
        let value = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let method = &parts.method;
        if bucket.is_empty() {
            return match *method {
                Method::GET => Ok(Operation::ListBuckets),
                _ => Err(S3Error::method()),
            };
        }
        if key.is_empty() {
            return Ok(match *method {
                Method::PUT => Operation::CreateBucket(bucket),
                Method::HEAD => Operation::HeadBucket(bucket),
                Method::DELETE => Operation::DeleteBucket(bucket),
                Method::GET if has("location") => Operation::GetBucketLocation(bucket),
                Method::GET if has("uploads") => return Err(S3Error::not_implemented("ListMultipartUploads")),
                Method::GET => {
                    let query = ListParams {
                        prefix: value("prefix").unwrap_or_default(),
                        delimiter: value("delimiter").filter(|d| !d.is_empty()),
                        max_keys: value("max-keys"),
                        continuation_token: value("continuation-token"),
                        start_after: value("start-after"),
                        marker: value("marker"),
                        encoding_type: value("encoding-type"),
                    };
                    Operation::ListObjects { bucket, v2: value("list-type").as_deref() == Some("2"), query }
                }
                Method::POST if has("delete") => Operation::DeleteObjects(bucket),
                _ => return Err(S3Error::method()),
            });
        }
        let copy = parts.headers.get("x-amz-copy-source").map(copy_source).transpose()?;
        let part_number = || {
            value("partNumber")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| S3Error::invalid("InvalidArgument", "partNumber is a number from 1 to 10000"))
        };
        Ok(match (method.clone(), value("uploadId"), copy) {
            (Method::PUT, Some(id), None) => Operation::UploadPart { bucket, key, id, number: part_number()? },
            (Method::PUT, Some(id), Some(from)) => {
                Operation::UploadPartCopy { bucket, key, id, number: part_number()?, from }
            }
            (Method::POST, Some(id), None) => Operation::CompleteMultipartUpload { bucket, key, id },
            (Method::DELETE, Some(id), None) => Operation::AbortMultipartUpload { bucket, key, id },
            (Method::POST, None, None) if has("uploads") => Operation::CreateMultipartUpload(bucket, key),
            (Method::PUT, None, Some(from)) => Operation::CopyObject { bucket, key, from },
            (Method::PUT, None, None) => Operation::PutObject(bucket, key),
            (Method::GET, None, None) => Operation::GetObject(bucket, key),
            (Method::HEAD, None, None) => Operation::HeadObject(bucket, key),
            (Method::DELETE, None, None) => Operation::DeleteObject(bucket, key),
            _ => return Err(S3Error::method()),
        })
    }

    fn reads(&self) -> bool {
        matches!(
            self,
            Operation::ListBuckets
                | Operation::HeadBucket(_)
                | Operation::GetBucketLocation(_)
                | Operation::ListObjects { .. }
                | Operation::GetObject(..)
                | Operation::HeadObject(..)
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::CreateBucket(_) => "CreateBucket",
            Operation::HeadBucket(_) => "HeadBucket",
            Operation::DeleteBucket(_) => "DeleteBucket",
            Operation::GetBucketLocation(_) => "GetBucketLocation",
            Operation::ListObjects { .. } => "ListObjects",
            Operation::DeleteObjects(_) => "DeleteObjects",
            Operation::PutObject(..) => "PutObject",
            Operation::CopyObject { .. } => "CopyObject",
            Operation::GetObject(..) => "GetObject",
            Operation::HeadObject(..) => "HeadObject",
            Operation::DeleteObject(..) => "DeleteObject",
            Operation::CreateMultipartUpload(..) => "CreateMultipartUpload",
            Operation::UploadPart { .. } => "UploadPart",
            Operation::UploadPartCopy { .. } => "UploadPartCopy",
            Operation::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload { .. } => "AbortMultipartUpload",
        }
    }
}

/// `x-amz-copy-source`: `[/]<bucket>/<key>`, URL-encoded.
fn copy_source(value: &HeaderValue) -> Result<(String, String), S3Error> {
    let bad = || S3Error::invalid("InvalidArgument", "x-amz-copy-source is /<bucket>/<key>, URL-encoded");
    let text = percent_decode_str(value.to_str().map_err(|_| bad())?).decode_utf8().map_err(|_| bad())?;
    if text.contains("?versionId=") {
        return Err(S3Error::not_implemented("versions"));
    }
    let text = text.strip_prefix('/').unwrap_or(&text);
    let (bucket, key) = text.split_once('/').ok_or_else(bad)?;
    Ok((bucket.to_owned(), key.to_owned()))
}

/// `x-amz-copy-source-range: bytes=<first>-<last>`: the start and end (exclusive).
fn copy_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(value) = headers.get("x-amz-copy-source-range") else { return Ok(None) };
    let bad = || S3Error::invalid("InvalidArgument", "x-amz-copy-source-range is bytes=<first>-<last>");
    let (first, last) = value.to_str().ok().and_then(|v| v.strip_prefix("bytes=")?.split_once('-')).ok_or_else(bad)?;
    let (first, last) = (first.parse::<u64>().map_err(|_| bad())?, last.parse::<u64>().map_err(|_| bad())?);
    (first <= last).then_some(Some((first, last + 1))).ok_or_else(bad)
}

/// File work, on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, S3Error> + Send + 'static) -> Result<T, S3Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| S3Error::internal(format!("the operation stopped: {e}")))?
}

/// Runs the operation on the folder.
async fn run(
    operation: Operation,
    buckets: Buckets,
    parts: &Parts,
    body: Body,
    body_timeout: Duration,
) -> Result<Response, S3Error> {
    let region = crate::auth::sigv4_credential(&parts.headers).and_then(|c| c.region).unwrap_or("us-east-1").to_owned();
    match operation {
        Operation::ListBuckets => {
            let list = blocking(move || Ok(buckets.list_buckets()?)).await?;
            let bucket = list.into_iter().map(|b| BucketXml { name: b.name, creation_date: iso(b.created) }).collect();
            let owner = Owner { id: crate::control_plane::ACCOUNT, display_name: "sagebrush" };
            xml(StatusCode::OK, &ListAllMyBucketsResult { xmlns: XMLNS, owner, buckets: BucketList { bucket } })
        }
        Operation::CreateBucket(bucket) => {
            let location = format!("/{bucket}");
            blocking(move || Ok(buckets.create_bucket(&bucket)?)).await?;
            Ok((StatusCode::OK, [(header::LOCATION, location)]).into_response())
        }
        Operation::HeadBucket(bucket) => {
            blocking(move || Ok(buckets.bucket(&bucket)?)).await?;
            Ok((StatusCode::OK, [("x-amz-bucket-region", region)]).into_response())
        }
        Operation::DeleteBucket(bucket) => {
            blocking(move || Ok(buckets.delete_bucket(&bucket)?)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Operation::GetBucketLocation(bucket) => {
            blocking(move || Ok(buckets.bucket(&bucket)?)).await?;
            // us-east-1 is no constraint at all, in S3's words.
            let value = if region == "us-east-1" { String::new() } else { region };
            xml(StatusCode::OK, &LocationConstraint { xmlns: XMLNS, value })
        }
        Operation::ListObjects { bucket, v2, query } => list(buckets, bucket, v2, query).await,
        Operation::DeleteObjects(bucket) => {
            let text = read_small(body, body_timeout).await?;
            let request: DeleteRequest = quick_xml::de::from_str(&text)
                .map_err(|e| S3Error::invalid("MalformedXML", format!("the Delete body is not S3's: {e}")))?;
            let result = blocking(move || {
                buckets.bucket(&bucket)?;
                let mut result = DeleteResult { xmlns: XMLNS, deleted: Vec::new(), error: Vec::new() };
                for object in request.object {
                    match buckets.delete(&bucket, &object.key) {
                        Ok(()) if request.quiet => {}
                        Ok(()) => result.deleted.push(Deleted { key: object.key }),
                        Err(e) => {
                            let e = S3Error::from(e);
                            result.error.push(DeleteError { key: object.key, code: e.code, message: e.message });
                        }
                    }
                }
                Ok(result)
            })
            .await?;
            xml(StatusCode::OK, &result)
        }
        Operation::PutObject(bucket, key) => {
            let checked = buckets.clone();
            let (b, k) = (bucket.clone(), key.clone());
            blocking(move || Ok(checked.check_put(&b, &k)?)).await?;
            let body = receive(&buckets, parts, body, body_timeout).await?;
            let object = blocking(move || Ok(buckets.put(&bucket, &key, body)?)).await?;
            Ok((StatusCode::OK, [(header::ETAG, object.etag)]).into_response())
        }
        Operation::CopyObject { bucket, key, from } => {
            let object = blocking(move || {
                let copy = buckets.copy(&from.0, &from.1, None)?;
                Ok(buckets.put(&bucket, &key, copy)?)
            })
            .await?;
            let result = CopyResult { xmlns: XMLNS, e_tag: object.etag, last_modified: iso(object.modified) };
            xml_as(StatusCode::OK, "CopyObjectResult", &result)
        }
        Operation::GetObject(bucket, key) | Operation::HeadObject(bucket, key) => {
            let (object, file) = blocking(move || Ok(buckets.open(&bucket, &key)?)).await?;
            let range = match parts.headers.get(header::RANGE) {
                Some(range) => byte_range(range, object.size)?,
                None => None,
            };
            let (start, end) = range.unwrap_or((0, object.size));
            let mut response = Response::builder()
                .status(if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK })
                .header(header::CONTENT_TYPE, "binary/octet-stream")
                .header(header::CONTENT_LENGTH, end - start)
                .header(header::ETAG, &object.etag)
                .header(header::LAST_MODIFIED, http_date(object.modified))
                .header(header::ACCEPT_RANGES, "bytes");
            if range.is_some() {
                response = response
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{}", end.saturating_sub(1), object.size));
            }
            let body = match file {
                Some(file) if parts.method != Method::HEAD => {
                    use tokio::io::{AsyncReadExt, AsyncSeekExt};
                    let mut file = tokio::fs::File::from_std(file);
                    file.seek(std::io::SeekFrom::Start(start)).await?;
                    Body::from_stream(tokio_util::io::ReaderStream::new(file.take(end - start)))
                }
                _ => Body::empty(),
            };
            response.body(body).map_err(|e| S3Error::internal(e.to_string()))
        }
        Operation::DeleteObject(bucket, key) => {
            blocking(move || Ok(buckets.delete(&bucket, &key)?)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Operation::CreateMultipartUpload(bucket, key) => {
            let (b, k) = (bucket.clone(), key.clone());
            let upload_id = blocking(move || Ok(buckets.begin_upload(&b, &k)?)).await?;
            xml(StatusCode::OK, &InitiateMultipartUploadResult { xmlns: XMLNS, bucket, key, upload_id })
        }
        Operation::UploadPart { bucket, key, id, number } => {
            let checked = buckets.clone();
            let (b, k, i) = (bucket.clone(), key.clone(), id.clone());
            blocking(move || Ok(checked.check_part(&b, &k, &i, number)?)).await?;
            let body = receive(&buckets, parts, body, body_timeout).await?;
            let etag = blocking(move || Ok(buckets.put_part(&bucket, &key, &id, number, body)?)).await?;
            Ok((StatusCode::OK, [(header::ETAG, etag)]).into_response())
        }
        Operation::UploadPartCopy { bucket, key, id, number, from } => {
            let range = copy_range(&parts.headers)?;
            let etag = blocking(move || {
                buckets.check_part(&bucket, &key, &id, number)?;
                let copy = buckets.copy(&from.0, &from.1, range)?;
                Ok(buckets.put_part(&bucket, &key, &id, number, copy)?)
            })
            .await?;
            let result = CopyResult { xmlns: XMLNS, e_tag: etag, last_modified: iso(SystemTime::now()) };
            xml_as(StatusCode::OK, "CopyPartResult", &result)
        }
        Operation::CompleteMultipartUpload { bucket, key, id } => {
            let text = read_small(body, body_timeout).await?;
            let request: CompleteRequest = quick_xml::de::from_str(&text).map_err(|e| {
                S3Error::invalid("MalformedXML", format!("the CompleteMultipartUpload body is not S3's: {e}"))
            })?;
            let parts: Vec<_> = request.part.into_iter().map(|p| (p.part_number, p.e_tag)).collect();
            let (b, k) = (bucket.clone(), key.clone());
            let object = blocking(move || Ok(buckets.complete_upload(&b, &k, &id, &parts)?)).await?;
            let location = format!("/{bucket}/{key}");
            let result = CompleteMultipartUploadResult { xmlns: XMLNS, location, bucket, key, e_tag: object.etag };
            xml(StatusCode::OK, &result)
        }
        Operation::AbortMultipartUpload { bucket, key, id } => {
            blocking(move || Ok(buckets.abort_upload(&bucket, &key, &id)?)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

/// ListObjects and ListObjectsV2: at most 1000 keys a page. A continuation token is the last
/// key or prefix given, in base64, opaque as S3's.
async fn list(buckets: Buckets, bucket: String, v2: bool, params: ListParams) -> Result<Response, S3Error> {
    let max = match params.max_keys.as_deref() {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| S3Error::invalid("InvalidArgument", "max-keys is a number from 0 to 1000"))?
            .min(1000),
        None => 1000,
    };
    let url = match params.encoding_type.as_deref() {
        None => false,
        Some("url") => true,
        Some(_) => return Err(S3Error::invalid("InvalidArgument", "encoding-type is url or nothing")),
    };
    let token = match &params.continuation_token {
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|key| String::from_utf8(key).ok())
                .ok_or_else(|| {
                    S3Error::invalid("InvalidArgument", "the continuation token is not one this server gave")
                })?,
        ),
        None => None,
    };
    let after = if v2 { token.or(params.start_after.clone()) } else { params.marker.clone() };
    let (prefix, delimiter) = (params.prefix.clone(), params.delimiter.clone());
    let listed = bucket.clone();
    let listing = blocking(move || {
        let query = ListQuery { prefix: &prefix, delimiter: delimiter.as_deref(), after: after.as_deref(), max };
        Ok(buckets.list(&listed, &query)?)
    })
    .await?;
    let encode = |text: String| if url { utf8_percent_encode(&text, KEY_ESCAPES).to_string() } else { text };
    let key_count = listing.objects.len() + listing.prefixes.len();
    let next = listing.next;
    let result = ListBucketResult {
        xmlns: XMLNS,
        name: bucket,
        prefix: encode(params.prefix),
        delimiter: params.delimiter.map(encode),
        max_keys: max,
        key_count: v2.then_some(key_count),
        is_truncated: next.is_some(),
        encoding_type: url.then_some("url"),
        contents: listing
            .objects
            .into_iter()
            .map(|o| Contents {
                key: encode(o.key),
                last_modified: iso(o.modified),
                e_tag: o.etag,
                size: o.size,
                storage_class: "STANDARD",
            })
            .collect(),
        common_prefixes: listing.prefixes.into_iter().map(|prefix| CommonPrefix { prefix: encode(prefix) }).collect(),
        continuation_token: if v2 { params.continuation_token } else { None },
        next_continuation_token: next
            .as_ref()
            .filter(|_| v2)
            .map(|key| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)),
        start_after: if v2 { params.start_after.map(encode) } else { None },
        marker: if v2 { None } else { Some(params.marker.map(encode).unwrap_or_default()) },
        next_marker: if v2 { None } else { next.map(encode) },
    };
    xml(StatusCode::OK, &result)
}

/// A body into a file beside the folder: each piece must arrive within `idle` of the last; an
/// `aws-chunked` body is decoded, and its checksums are checked before it is put anywhere.
async fn receive(buckets: &Buckets, parts: &Parts, body: Body, idle: Duration) -> Result<Scratch, S3Error> {
    let mut raw = buckets.scratch()?;
    let mut file = tokio::fs::File::from_std(raw.file()?.try_clone()?);
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    loop {
        let piece = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return Err(S3Error::invalid(
                    "RequestTimeout",
                    format!("the body stopped arriving for {} s", idle.as_secs_f64()),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(S3Error::invalid("IncompleteBody", format!("the body was cut off: {e}"))),
            Ok(Some(Ok(piece))) => piece,
        };
        received += piece.len() as u64;
        if received > MAX_BODY {
            return Err(S3Error::invalid(
                "EntityTooLarge",
                "a body is at most 5 GiB: larger objects go up in parts (aws s3 cp does that itself)",
            ));
        }
        file.write_all(&piece).await?;
    }
    file.flush().await?;
    let (headers, buckets) = (parts.headers.clone(), buckets.clone());
    blocking(move || checked_body(&buckets, raw, &headers)).await
}

/// The body as sent, decoded from `aws-chunked` when it is, once its checksums match.
fn checked_body(buckets: &Buckets, raw: Scratch, headers: &HeaderMap) -> Result<Scratch, S3Error> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let chunked = text("content-encoding").is_some_and(|e| e.split(',').any(|e| e.trim() == "aws-chunked"))
        || text("x-amz-content-sha256").is_some_and(|s| s.starts_with("STREAMING-"));
    let mut sent: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(CHECKSUM) || *name == "content-md5")
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = if chunked {
        let mut decoded = buckets.scratch()?;
        let source = std::fs::File::open(raw.path())?;
        sent.extend(unchunk(BufReader::new(source), decoded.file()?)?);
        if let Some(length) = text("x-amz-decoded-content-length") {
            let got = decoded.size()?;
            if length.parse::<u64>().ok() != Some(got) {
                return Err(S3Error::invalid(
                    "IncompleteBody",
                    format!("the body decodes to {got} bytes, not the {length} its header says"),
                ));
            }
        }
        decoded
    } else {
        // The payload hash of a chunked body is its scheme's name; of a whole one, its SHA-256.
        if let Some(digest) = text("x-amz-content-sha256").filter(|s| s.len() == 64) {
            sent.push(("x-amz-content-sha256".to_owned(), digest));
        }
        raw
    };
    check_sums(body.path(), &sent)?;
    Ok(body)
}

/// The prefix of S3's checksum headers and trailers (`x-amz-checksum-crc32`, ...).
const CHECKSUM: &str = "x-amz-checksum-";

/// Decodes an `aws-chunked` body (`<hex size>[;chunk-signature=...]\r\n<bytes>\r\n`, ended by a
/// chunk of size 0 and its trailers): its checksum trailers, at most a few.
fn unchunk(mut raw: impl BufRead, out: &mut std::fs::File) -> Result<Vec<(String, String)>, S3Error> {
    let bad = |why: &str| S3Error::invalid("IncompleteBody", format!("the aws-chunked body is malformed: {why}"));
    let mut line = Vec::new();
    let read_line = |raw: &mut dyn BufRead, line: &mut Vec<u8>| -> Result<String, S3Error> {
        line.clear();
        raw.take(4096).read_until(b'\n', line)?;
        let text = std::str::from_utf8(line).map_err(|_| bad("a chunk header is not text"))?;
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    };
    loop {
        let header = read_line(&mut raw, &mut line)?;
        let size = header.split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size.trim(), 16).map_err(|_| bad("a chunk's size is not hexadecimal"))?;
        if size == 0 {
            let mut trailers = Vec::new();
            // A trailer is a checksum and its signature: a handful, not a body's worth.
            for _ in 0..16 {
                let trailer = read_line(&mut raw, &mut line)?;
                if trailer.is_empty() {
                    return Ok(trailers);
                }
                if let Some((name, value)) = trailer.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    if name.starts_with(CHECKSUM) {
                        trailers.push((name, value.trim().to_owned()));
                    }
                }
            }
            return Err(bad("its trailers go on past 16 lines"));
        }
        let copied = std::io::copy(&mut (&mut raw).take(size), out)?;
        if copied != size {
            return Err(bad("a chunk is shorter than its size"));
        }
        if !read_line(&mut raw, &mut line)?.is_empty() {
            return Err(bad("a chunk runs past its size"));
        }
    }
}

/// Checks each checksum sent with a body (a header or a trailer) against the body's own:
/// `Content-MD5`, `x-amz-content-sha256` (hex), and `x-amz-checksum-` CRC32, CRC32C,
/// CRC64NVME, SHA-1 and SHA-256 (base64). One of another name is refused, not ignored.
fn check_sums(body: &std::path::Path, sent: &[(String, String)]) -> Result<(), S3Error> {
    let known = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];
    if let Some((name, _)) =
        sent.iter().find(|(name, _)| name.strip_prefix(CHECKSUM).is_some_and(|algorithm| !known.contains(&algorithm)))
    {
        return Err(S3Error::invalid(
            "InvalidRequest",
            format!("{name} is not a checksum sagebrush checks: send CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"),
        ));
    }
    for (name, value) in sent {
        let (computed, code) = digest(body, name)?;
        // Base64 is compared as sent; a hex digest in either case.
        let same = if code == "XAmzContentSHA256Mismatch" {
            value.eq_ignore_ascii_case(&computed)
        } else {
            *value == computed
        };
        if !same {
            return Err(S3Error::invalid(
                code,
                format!("the body's {name} is {computed}, not the {value} sent with it: it changed on the way"),
            ));
        }
    }
    Ok(())
}

/// The body's checksum of the header or trailer `name`, as S3 writes it, and the error code of
/// a mismatch. Only what was sent is computed: a pass over the body each.
fn digest(body: &std::path::Path, name: &str) -> Result<(String, &'static str), S3Error> {
    use md5::Digest as _;
    static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    static CRC64NVME: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let sha256 = || fold(body, <sha2::Sha256 as sha2::Digest>::new(), |h, piece| sha2::Digest::update(h, piece));
    Ok(match name {
        "content-md5" => (b64(&fold(body, md5::Md5::new(), |h, piece| h.update(piece))?.finalize()), "BadDigest"),
        "x-amz-content-sha256" => (hex::encode(sha2::Digest::finalize(sha256()?)), "XAmzContentSHA256Mismatch"),
        "x-amz-checksum-crc32" => {
            (b64(&fold(body, CRC32.digest(), |d, p| d.update(p))?.finalize().to_be_bytes()), "BadDigest")
        }
        "x-amz-checksum-crc32c" => {
            (b64(&fold(body, CRC32C.digest(), |d, p| d.update(p))?.finalize().to_be_bytes()), "BadDigest")
        }
        "x-amz-checksum-crc64nvme" => {
            (b64(&fold(body, CRC64NVME.digest(), |d, p| d.update(p))?.finalize().to_be_bytes()), "BadDigest")
        }
        "x-amz-checksum-sha1" => {
            (b64(&fold(body, sha1::Sha1::new(), |h, piece| h.update(piece))?.finalize()), "BadDigest")
        }
        _ => (b64(&sha2::Digest::finalize(sha256()?)), "BadDigest"),
    })
}

/// Feeds the body, piece by piece, to `state`.
fn fold<S>(body: &std::path::Path, mut state: S, mut update: impl FnMut(&mut S, &[u8])) -> Result<S, S3Error> {
    let mut file = std::fs::File::open(body)?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(state),
            n => update(&mut state, &buffer[..n]),
        }
    }
}

/// A small XML body (a Delete or CompleteMultipartUpload request), at most 4 MiB.
async fn read_small(body: Body, timeout: Duration) -> Result<String, S3Error> {
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, 4 * 1024 * 1024))
        .await
        .map_err(|_| S3Error::invalid("RequestTimeout", "the body did not arrive in time"))?
        .map_err(|_| S3Error::invalid("MalformedXML", "the body is over 4 MiB"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| S3Error::invalid("MalformedXML", "the body is not UTF-8"))
}

/// `Range: bytes=<first>-[<last>]` or `bytes=-<suffix length>`: the start and end (exclusive),
/// or `None` for a range S3 does not read, which is ignored as HTTP says.
fn byte_range(range: &HeaderValue, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let spec = range.to_str().ok().and_then(|r| r.strip_prefix("bytes=")).filter(|s| !s.contains(','));
    let Some((first, last)) = spec.and_then(|s| s.split_once('-')) else { return Ok(None) };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let (start, end) = match (number(first), number(last)) {
        (None, Some(suffix)) if first.trim().is_empty() => (size.saturating_sub(suffix), size),
        (Some(first), None) if last.trim().is_empty() => (first, size),
        (Some(first), Some(last)) if first <= last => (first, last.saturating_add(1).min(size)),
        _ => return Ok(None),
    };
    if start >= size {
        return Err(S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            format!("the object is {size} bytes"),
        ));
    }
    Ok(Some((start, end)))
}

/// An answer's XML, its root named after its type.
fn xml<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, S3Error> {
    answer_xml(status, quick_xml::se::to_string(value))
}

/// An answer's XML, its root named `root`.
fn xml_as<T: Serialize>(status: StatusCode, root: &str, value: &T) -> Result<Response, S3Error> {
    answer_xml(status, quick_xml::se::to_string_with_root(root, value))
}

fn answer_xml(status: StatusCode, text: Result<String, quick_xml::SeError>) -> Result<Response, S3Error> {
    let text = text.map_err(|e| S3Error::internal(e.to_string()))?;
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{text}");
    Ok((status, [(header::CONTENT_TYPE, "application/xml")], body).into_response())
}

fn iso(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn http_date(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode_upper(bytes)
}

/// An S3 error: its status, code and message, sent as S3's `<Error>`.
#[derive(Debug)]
struct S3Error {
    status: StatusCode,
    code: String,
    message: String,
}

impl S3Error {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> S3Error {
        S3Error { status, code: code.to_owned(), message: message.into() }
    }

    fn invalid(code: &str, message: impl Into<String>) -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal(message: String) -> S3Error {
        S3Error::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    fn method() -> S3Error {
        S3Error::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "that method is not allowed on this resource")
    }

    fn not_implemented(what: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", format!("sagebrush's S3 does not answer {what}"))
    }

    /// A caller the tokens refused, in S3's words.
    fn refused(refusal: &ServiceError) -> S3Error {
        S3Error::new(StatusCode::FORBIDDEN, "InvalidAccessKeyId", refusal.one_line())
    }

    /// S3's `<Error>`; a HEAD's error has no body, as S3's has not.
    fn response(self, method: &Method) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, "S3 request failed: {}", self.message);
        }
        if *method == Method::HEAD {
            return self.status.into_response();
        }
        let body = ErrorXml { code: self.code, message: self.message };
        match xml(self.status, &body) {
            Ok(response) => response,
            Err(_) => self.status.into_response(),
        }
    }
}

/// A file that could not be read or written: the server's trouble, not the caller's.
impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> S3Error {
        S3Error::internal(e.to_string())
    }
}

impl From<BucketError> for S3Error {
    fn from(e: BucketError) -> S3Error {
        let (status, code) = match &e {
            BucketError::NoSuchBucket(_) => (StatusCode::NOT_FOUND, "NoSuchBucket"),
            BucketError::NoSuchKey(_) => (StatusCode::NOT_FOUND, "NoSuchKey"),
            BucketError::NoSuchUpload(_) => (StatusCode::NOT_FOUND, "NoSuchUpload"),
            BucketError::BucketExists(_) => (StatusCode::CONFLICT, "BucketAlreadyOwnedByYou"),
            BucketError::BucketNotEmpty(_) => (StatusCode::CONFLICT, "BucketNotEmpty"),
            BucketError::InvalidBucketName(_) => (StatusCode::BAD_REQUEST, "InvalidBucketName"),
            BucketError::InvalidKey(_) => (StatusCode::BAD_REQUEST, "InvalidArgument"),
            BucketError::InvalidPart(_) => (StatusCode::BAD_REQUEST, "InvalidPart"),
            BucketError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        let mut message = e.to_string();
        if let BucketError::NoSuchBucket(bucket) = &e {
            message.push_str(&format!("; make it with `aws s3 mb s3://{bucket}`"));
        }
        S3Error::new(status, code, message)
    }
}

#[derive(Serialize)]
#[serde(rename = "Error", rename_all = "PascalCase")]
struct ErrorXml {
    code: String,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    owner: Owner,
    buckets: BucketList,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Owner {
    #[serde(rename = "ID")]
    id: &'static str,
    display_name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BucketList {
    bucket: Vec<BucketXml>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BucketXml {
    name: String,
    creation_date: String,
}

#[derive(Serialize)]
struct LocationConstraint {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "$text")]
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    name: String,
    prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<String>,
    max_keys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_count: Option<usize>,
    is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding_type: Option<&'static str>,
    contents: Vec<Contents>,
    common_prefixes: Vec<CommonPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    last_modified: String,
    #[serde(rename = "ETag")]
    e_tag: String,
    size: u64,
    storage_class: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix {
    prefix: String,
}

/// CopyObjectResult and CopyPartResult, which are the same but for their names.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CopyResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "ETag")]
    e_tag: String,
    last_modified: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    bucket: String,
    key: String,
    upload_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    location: String,
    bucket: String,
    key: String,
    #[serde(rename = "ETag")]
    e_tag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteRequest {
    #[serde(default)]
    part: Vec<CompletedPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompletedPart {
    part_number: u32,
    #[serde(rename = "ETag")]
    e_tag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    #[serde(default)]
    object: Vec<ObjectId>,
    #[serde(default)]
    quiet: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectId {
    key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteResult {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    deleted: Vec<Deleted>,
    error: Vec<DeleteError>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Deleted {
    key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteError {
    key: String,
    code: String,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_chunked_body_decodes_to_its_bytes_and_trailers() {
        let raw = b"5;chunk-signature=abc\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:x\r\n\r\n";
        let mut out = tempfile::tempfile().unwrap();
        let trailers = unchunk(&raw[..], &mut out).unwrap();
        assert_eq!(trailers, [("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]);
        let mut body = String::new();
        use std::io::Seek;
        out.rewind().unwrap();
        out.read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello world");
        let endless = format!("0\r\n{}", "a:b\r\n".repeat(100));
        for bad in [&b"5\r\nhel"[..], b"zz\r\nhello\r\n", b"3\r\nhello\r\n0\r\n\r\n", endless.as_bytes()] {
            let mut out = tempfile::tempfile().unwrap();
            let e = unchunk(bad, &mut out).unwrap_err();
            assert_eq!(e.code, "IncompleteBody", "{bad:?}");
        }
    }

    #[test]
    fn each_checksum_sent_is_checked_and_an_unknown_one_refused() {
        let body = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(body.path(), "hello world").unwrap();
        let check = |name: &str, value: &str| check_sums(body.path(), &[(name.to_owned(), value.to_owned())]);
        let good = [
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            ("x-amz-checksum-sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
            ("content-md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
            ("x-amz-content-sha256", "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9"),
        ];
        for (name, value) in good {
            assert!(check(name, value).is_ok(), "{name}");
        }
        for name in ["x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "content-md5"] {
            assert_eq!(check(name, "AAAAAA==").unwrap_err().code, "BadDigest", "{name}");
        }
        // Base64 is case-sensitive: the same letters in other cases are another checksum.
        assert_eq!(check("content-md5", "xRy7U+aE7TctYYk7J1RnWW==").unwrap_err().code, "BadDigest");
        assert_eq!(check("x-amz-checksum-xxhash", "AAAA").unwrap_err().code, "InvalidRequest");
    }

    #[test]
    fn ranges_are_read_as_s3_reads_them() {
        let range = |text: &str| byte_range(&HeaderValue::from_str(text).unwrap(), 10).map_err(|e| e.code);
        assert_eq!(range("bytes=0-4"), Ok(Some((0, 5))));
        assert_eq!(range("bytes=0-9"), Ok(Some((0, 10))), "a whole object's range is still a range (206)");
        assert_eq!(range("bytes=5-"), Ok(Some((5, 10))));
        assert_eq!(range("bytes=-3"), Ok(Some((7, 10))));
        assert_eq!(range("bytes=8-100"), Ok(Some((8, 10))));
        assert_eq!(range("bytes=10-"), Err("InvalidRange".to_owned()));
        assert_eq!(range("bytes=5-3"), Ok(None), "an invalid range is ignored");
        assert_eq!(range("lines=1-2"), Ok(None));
    }

    #[test]
    fn answers_are_s3s_xml() {
        let text = quick_xml::se::to_string(&CompleteMultipartUploadResult {
            xmlns: XMLNS,
            location: "/b/k".into(),
            bucket: "b".into(),
            key: "k".into(),
            e_tag: "\"x\"".into(),
        })
        .unwrap();
        assert_eq!(
            text,
            format!(
                "<CompleteMultipartUploadResult xmlns=\"{XMLNS}\"><Location>/b/k</Location><Bucket>b</Bucket>\
                 <Key>k</Key><ETag>\"x\"</ETag></CompleteMultipartUploadResult>"
            )
        );
        let request: CompleteRequest = quick_xml::de::from_str(
            "<CompleteMultipartUpload xmlns=\"x\"><Part><ETag>\"a\"</ETag><PartNumber>1</PartNumber></Part>\
             <Part><PartNumber>2</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>",
        )
        .unwrap();
        let parts: Vec<_> = request.part.into_iter().map(|p| (p.part_number, p.e_tag)).collect();
        assert_eq!(parts, [(1, "\"a\"".to_owned()), (2, "b".to_owned())]);
    }
}
