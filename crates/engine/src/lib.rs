//! Runs pipelines: numbers runs, executes stages in order, persists every transition, and recovers after a crash.
