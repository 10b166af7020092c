//! Integration tests: each drives the real `sagebrush` binary the way a user does, with its own home directory.

mod api;
mod approvals;
mod auth;
mod browser;
mod champion;
mod containers;
mod control_plane;
mod dashboard;
mod doctor;
mod drift;
mod events;
mod failures;
mod harness;
mod hooks;
mod lifecycle;
mod notify;
mod pipeline_errors;
mod postgres;
mod process_runtime;
mod projects;
mod queue;
mod recovery;
mod retention;
#[cfg(feature = "aws")]
mod s3;
mod s3_api;
#[cfg(feature = "aws")]
mod sagemaker;
mod secrets;
mod security;
mod serving;
mod stages;
mod triggers;
