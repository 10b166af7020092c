//! The invocation router: the in-memory endpoint table and POST /endpoints/{name}/invocations.
